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
    /// Visits the members of the top-level object; `body` must consume each value. Nothing may
    /// follow the object.
    mutating func members(_ body: (String, inout JSONParser) throws(CoreError) -> Void) throws(CoreError) {
        skipWhitespace()
        guard !atEnd, peek == UInt8(ascii: "{") else { throw CoreError(.wrongType, "expected a JSON object") }
        try objectMembers(body)
        skipWhitespace()
        guard atEnd else { throw error("unexpected data after the object") }
    }

    /// Visits the elements of the array at the position, and leaves the parser just after it;
    /// `body` must consume each element. An element's error is placed under `field[index]`.
    mutating func arrayElements(field: String, _ body: (Int, inout JSONParser) throws(CoreError) -> Void)
        throws(CoreError)
    {
        skipWhitespace()
        guard !atEnd, peek == UInt8(ascii: "[") else {
            let value = try parseValue()
            throw CoreError(
                .wrongType, "expected an array, found \(value.typeName)", field: field.isEmpty ? nil : field)
        }
        position += 1
        skipWhitespace()
        if !atEnd, peek == UInt8(ascii: "]") {
            position += 1
            return
        }
        var index = 0
        while true {
            skipWhitespace()
            do throws(CoreError) {
                try body(index, &self)
            } catch {
                throw error.within("\(field)[\(index)]")
            }
            index += 1
            skipWhitespace()
            guard !atEnd else { throw self.error("unterminated array") }
            if peek == UInt8(ascii: ",") {
                position += 1
                continue
            }
            try expect(UInt8(ascii: "]"), "',' or ']'")
            return
        }
    }

    /// An array of sync records at the current position, each decoded from its own bytes.
    mutating func recordArray(field: String) throws(CoreError) -> [ChangeRecord] {
        var records: [ChangeRecord] = []
        try arrayElements(field: field) { _, parser throws(CoreError) in
            records.append(try ChangeRecord.decode(&parser))
        }
        return records
    }

    /// The `entity` member's row at the position, `null` giving nil, in one pass: compact input
    /// is kept byte for byte, as it came.
    mutating func entityRow() throws(CoreError) -> EntityRow? {
        guard !atEnd else { throw error("unexpected end of input") }
        if peek == UInt8(ascii: "n") {
            try literal("null")
            return nil
        }
        guard peek == UInt8(ascii: "{") else {
            let value = try parseValue()
            throw CoreError(.wrongType, "expected an object, found \(value.typeName)", field: "entity")
        }
        let start = position
        sawWhitespace = false
        try skipValue()
        let slice = UnsafeRawBufferPointer(rebasing: bytes[start..<position])
        return sawWhitespace ? try EntityRow(validating: slice) : EntityRow(trusted: [UInt8](slice))
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
