/// The body of Trilium's `PUT /api/sync/update`: `{"entities":[record…],"instanceId":"…"}`.
public struct SyncUpdateBody: Sendable {
    public var records: [ChangeRecord]
    /// The pushing instance: every record is stamped with it (echo avoidance).
    public var instanceId: String

    /// Decodes a push body; a bad record is named by its index (`entities[3].entityChange.hash`).
    ///
    /// - Throws: `CoreError`.
    public init(json: some Collection<UInt8>) throws(CoreError) {
        self = try withRawBytes(json) { raw throws(CoreError) in try SyncUpdateBody.decode(raw) }
    }

    static func decode(_ raw: UnsafeRawBufferPointer) throws(CoreError) -> SyncUpdateBody {
        var parser = JSONParser(raw)
        parser.skipWhitespace()
        guard !parser.atEnd, parser.peek == UInt8(ascii: "{") else {
            throw CoreError(.wrongType, "the body must be a JSON object {\"entities\":[…],\"instanceId\":\"…\"}")
        }
        parser.position += 1
        var records: [ChangeRecord]?
        var instanceId: String?
        parser.skipWhitespace()
        if !parser.atEnd, parser.peek == UInt8(ascii: "}") {
            parser.position += 1
        } else {
            while true {
                parser.skipWhitespace()
                guard !parser.atEnd, parser.peek == UInt8(ascii: "\"") else {
                    throw parser.error("expected a member name")
                }
                let name = try parser.parseString()
                parser.skipWhitespace()
                try parser.expect(UInt8(ascii: ":"), "':'")
                parser.skipWhitespace()
                switch name {
                case "entities":
                    records = try decodeRecords(&parser, raw)
                case "instanceId":
                    let value = try parser.parseValue()
                    guard case .string(let s) = value else {
                        throw CoreError(.wrongType, "expected a string, found \(value.typeName)", field: "instanceId")
                    }
                    instanceId = s
                default:
                    try parser.skipValue()
                }
                parser.skipWhitespace()
                guard !parser.atEnd else { throw parser.error("unterminated object") }
                if parser.peek == UInt8(ascii: ",") {
                    parser.position += 1
                    continue
                }
                try parser.expect(UInt8(ascii: "}"), "',' or '}'")
                break
            }
        }
        parser.skipWhitespace()
        guard parser.atEnd else { throw parser.error("unexpected data after the body") }
        guard let records else { throw CoreError(.missingField, "required", field: "entities") }
        guard let instanceId else { throw CoreError(.missingField, "required", field: "instanceId") }
        guard RandomID.isAlphanumeric(instanceId) else {
            throw CoreError(.invalidValue, "instanceId must be 1-64 ASCII letters or digits", field: "instanceId")
        }
        return SyncUpdateBody(records: records, instanceId: instanceId)
    }

    init(records: [ChangeRecord], instanceId: String) {
        self.records = records
        self.instanceId = instanceId
    }

    private static func decodeRecords(_ parser: inout JSONParser, _ raw: UnsafeRawBufferPointer) throws(CoreError)
        -> [ChangeRecord]
    {
        guard !parser.atEnd, parser.peek == UInt8(ascii: "[") else {
            let value = try parser.parseValue()
            throw CoreError(.wrongType, "expected an array, found \(value.typeName)", field: "entities")
        }
        parser.position += 1
        var records: [ChangeRecord] = []
        parser.skipWhitespace()
        if !parser.atEnd, parser.peek == UInt8(ascii: "]") {
            parser.position += 1
            return records
        }
        while true {
            parser.skipWhitespace()
            let start = parser.position
            try parser.skipValue()
            do throws(CoreError) {
                records.append(try ChangeRecord.decode(UnsafeRawBufferPointer(rebasing: raw[start..<parser.position])))
            } catch {
                throw error.within("entities[\(records.count)]")
            }
            parser.skipWhitespace()
            guard !parser.atEnd else { throw parser.error("unterminated array") }
            if parser.peek == UInt8(ascii: ",") {
                parser.position += 1
                continue
            }
            try parser.expect(UInt8(ascii: "]"), "',' or ']'")
            return records
        }
    }
}
