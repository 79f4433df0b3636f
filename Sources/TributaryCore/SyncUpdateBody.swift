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
        var records: [ChangeRecord]?
        var instanceId: String?
        var parser = JSONParser(raw)
        do throws(CoreError) {
            try parser.members { name, parser throws(CoreError) in
                switch name {
                case "entities":
                    records = try parser.recordArray(field: "entities")
                case "instanceId":
                    let value = try parser.parseValue()
                    guard case .string(let s) = value else {
                        throw CoreError(.wrongType, "expected a string, found \(value.typeName)", field: "instanceId")
                    }
                    instanceId = s
                default:
                    try parser.skipValue()
                }
            }
        } catch  where error.code == .wrongType && error.field == nil {
            throw CoreError(.wrongType, "the body must be a JSON object {\"entities\":[…],\"instanceId\":\"…\"}")
        }
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
}
