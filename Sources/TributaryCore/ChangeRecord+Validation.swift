/// Bounds applied to every incoming change.
public struct ChangeLimits: Sendable, Hashable {
    /// Largest entity row accepted, in bytes of JSON.
    public var maxEntityBytes: Int
    /// Longest entityId accepted.
    public var maxEntityIdLength: Int

    public init(maxEntityBytes: Int = 32 << 20, maxEntityIdLength: Int = 128) {
        self.maxEntityBytes = maxEntityBytes
        self.maxEntityIdLength = maxEntityIdLength
    }

    public static let `default` = ChangeLimits()
}

extension ChangeRecord {
    /// Checks every field's format and the row's shape; the error names the field.
    ///
    /// - Throws: `CoreError` with `.invalidValue`, `.missingField`, `.wrongType` or `.tooLarge`.
    public func validate(_ limits: ChangeLimits = .default) throws(CoreError) {
        let c = change
        guard limits.isValidEntityId(c.entityId) else {
            throw CoreError(
                .invalidValue,
                "entityId must be 1-\(limits.maxEntityIdLength) characters of A-Z a-z 0-9 _ . : -, got '\(c.entityId.prefix(80))'",
                field: "entityChange.entityId")
        }
        guard isPrintableToken(c.hash, maxLength: 64) else {
            throw CoreError(.invalidValue, "hash must be 1-64 printable ASCII characters", field: "entityChange.hash")
        }
        guard RandomID.isAlphanumeric(c.changeId) else {
            throw CoreError(
                .invalidValue, "changeId must be 1-64 ASCII letters or digits, got '\(c.changeId.prefix(80))'",
                field: "entityChange.changeId")
        }
        guard isPrintableToken(c.componentId, maxLength: 128) else {
            throw CoreError(
                .invalidValue, "componentId must be 1-128 printable ASCII characters", field: "entityChange.componentId"
            )
        }
        guard RandomID.isAlphanumeric(c.instanceId) else {
            throw CoreError(
                .invalidValue, "instanceId must be 1-64 ASCII letters or digits, got '\(c.instanceId.prefix(80))'",
                field: "entityChange.instanceId")
        }
        guard RandomID.isAlphanumeric(originInstanceId) else {
            throw CoreError(
                .invalidValue, "origin instanceId must be 1-64 ASCII letters or digits", field: "originInstanceId")
        }
        guard let entity else {
            if !c.isErased && c.entityName != .options {
                throw CoreError(.missingField, "a change that is not an erasure needs its entity row", field: "entity")
            }
            return
        }
        if c.isErased {
            throw CoreError(.invalidValue, "an erasure (isErased 1) must not carry an entity row", field: "entity")
        }
        guard entity.bytes.count <= limits.maxEntityBytes else {
            throw CoreError(
                .tooLarge, "the entity row is \(entity.bytes.count) bytes; the limit is \(limits.maxEntityBytes)",
                field: "entity")
        }
        if let primaryKey = c.entityName.primaryKey {
            switch entity.value(forKey: primaryKey) {
            case .string(let id) where id == c.entityId: break
            case .string(let id):
                throw CoreError(
                    .invalidValue, "'\(id.prefix(80))' does not match entityId '\(c.entityId)'",
                    field: "entity.\(primaryKey)")
            case nil:
                throw CoreError(
                    .missingField, "the row has no primary key '\(primaryKey)'", field: "entity.\(primaryKey)")
            case let other?:
                throw CoreError(.wrongType, "expected a string, found \(other.typeName)", field: "entity.\(primaryKey)")
            }
        } else {
            // note_reordering: a map of branchId → notePosition.
            for member in try entity.object() {
                guard case .number(let text) = member.value, Int(text) != nil else {
                    throw CoreError(
                        .wrongType, "note_reordering positions must be integers", field: "entity.\(member.key)")
                }
            }
        }
    }
}

extension ChangeLimits {
    /// Trilium ids: random alphanumerics, deterministic branch ids `parent_child`, fixed ids such
    /// as `_hidden` or `_lbRoot`, option names — 1 to `maxEntityIdLength` of `A-Za-z0-9_.:-`.
    public func isValidEntityId(_ text: String) -> Bool {
        return text.utf8.allBytes(maxLength: maxEntityIdLength) { b in
            (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || b == 0x5F || b == 0x2E
                || b == 0x3A || b == 0x2D
        }
    }
}

func isPrintableToken(_ text: String, maxLength: Int) -> Bool {
    text.utf8.allBytes(maxLength: maxLength) { $0 > 0x20 && $0 < 0x7F }
}
