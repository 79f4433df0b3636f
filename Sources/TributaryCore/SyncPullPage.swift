/// The answer of Trilium's `GET /api/sync/changed`:
/// `{"entityChanges":[record…],"lastEntityChangeId":N,"outstandingPullCount":M}`, decoded
/// without building generic JSON values (each record's row stays its original bytes).
public struct SyncPullPage: Sendable {
    public var records: [ChangeRecord]
    public var lastEntityChangeId: EntityChangeID
    public var outstandingPullCount: Int

    /// - Throws: `CoreError` naming the field (`entityChanges[3].entityChange.hash`).
    public init(json: some Collection<UInt8>) throws(CoreError) {
        self = try withRawBytes(json) { raw throws(CoreError) in try SyncPullPage.decode(raw) }
    }

    init(records: [ChangeRecord], lastEntityChangeId: EntityChangeID, outstandingPullCount: Int) {
        self.records = records
        self.lastEntityChangeId = lastEntityChangeId
        self.outstandingPullCount = outstandingPullCount
    }

    static func decode(_ raw: UnsafeRawBufferPointer) throws(CoreError) -> SyncPullPage {
        var records: [ChangeRecord]?
        var last: Int?
        var outstanding = 0
        var parser = JSONParser(raw)
        try parser.members { name, parser throws(CoreError) in
            switch name {
            case "entityChanges": records = try parser.recordArray(field: "entityChanges")
            case "lastEntityChangeId": last = try parser.parseValue().intValue
            case "outstandingPullCount": outstanding = try parser.parseValue().intValue ?? 0
            default: try parser.skipValue()
            }
        }
        guard let records else { throw CoreError(.missingField, "required", field: "entityChanges") }
        guard let last, last >= 0 else {
            throw CoreError(.invalidValue, "a non-negative integer is required", field: "lastEntityChangeId")
        }
        return SyncPullPage(
            records: records, lastEntityChangeId: EntityChangeID(UInt64(last)), outstandingPullCount: outstanding)
    }
}

extension JSONParser {
    /// Visits the members of the object at the current position; `body` must consume the value.
    mutating func members(_ body: (String, inout JSONParser) throws(CoreError) -> Void) throws(CoreError) {
        skipWhitespace()
        guard !atEnd, peek == UInt8(ascii: "{") else { throw CoreError(.wrongType, "expected a JSON object") }
        position += 1
        skipWhitespace()
        if !atEnd, peek == UInt8(ascii: "}") {
            position += 1
        } else {
            while true {
                skipWhitespace()
                guard !atEnd, peek == UInt8(ascii: "\"") else { throw error("expected a member name") }
                let name = try parseString()
                skipWhitespace()
                try expect(UInt8(ascii: ":"), "':'")
                skipWhitespace()
                try body(name, &self)
                skipWhitespace()
                guard !atEnd else { throw error("unterminated object") }
                if peek == UInt8(ascii: ",") {
                    position += 1
                    continue
                }
                try expect(UInt8(ascii: "}"), "',' or '}'")
                break
            }
        }
        skipWhitespace()
        guard atEnd else { throw error("unexpected data after the object") }
    }

    /// An array of sync records at the current position, each decoded from its own bytes.
    mutating func recordArray(field: String) throws(CoreError) -> [ChangeRecord] {
        guard !atEnd, peek == UInt8(ascii: "[") else {
            let value = try parseValue()
            throw CoreError(.wrongType, "expected an array, found \(value.typeName)", field: field)
        }
        position += 1
        var records: [ChangeRecord] = []
        skipWhitespace()
        if !atEnd, peek == UInt8(ascii: "]") {
            position += 1
            return records
        }
        while true {
            do throws(CoreError) {
                records.append(try ChangeRecord.decode(&self))
            } catch {
                throw error.within("\(field)[\(records.count)]")
            }
            skipWhitespace()
            guard !atEnd else { throw self.error("unterminated array") }
            if peek == UInt8(ascii: ",") {
                position += 1
                continue
            }
            try expect(UInt8(ascii: "]"), "',' or ']'")
            return records
        }
    }
}

extension JSONWriter {
    /// A JSON array of sync records with their local ids: `entityChanges` of a pull page and
    /// `entities` of a push body.
    public mutating func writeRecords(_ changes: some Sequence<LoggedChange>) {
        raw("[")
        var first = true
        for logged in changes {
            if !first { raw(",") }
            first = false
            logged.record.writeWire(to: &self, id: logged.id)
        }
        raw("]")
    }
}
