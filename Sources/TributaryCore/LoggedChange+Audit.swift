extension LoggedChange {
    /// The audit line of `tributary replay` and `GET /api/changes`:
    /// `{"id":N,"entityChange":{…,"originInstanceId":…},"entity":{…}}` (no newline).
    public func writeAudit(to writer: inout JSONWriter) {
        writer.raw("{\"id\":")
        writer.number(id.rawValue)
        writer.raw(",\"entityChange\":")
        change.writeWire(to: &writer, id: id, originInstanceId: record.originInstanceId)
        if let entity {
            writer.raw(",\"entity\":")
            writer.raw(entity.bytes)
        }
        writer.raw("}")
    }
}

/// Tributary's version, reported by `GET /api/status`.
public enum TributaryVersion {
    public static let current = "0.1.0"
}
