/// A write made on this node, as `POST /api/changes` takes it: an entity row to store, or an
/// erasure. The apply path fills in the rest of its change (hash, changeId, instanceId,
/// utcDateChanged).
public struct LocalWrite: Sendable, Hashable {
    public var entityName: EntityName
    public var entityId: String
    /// The row; nil for an erasure.
    public var entity: EntityRow?
    public var componentId: String

    public init(entityName: EntityName, entityId: String, entity: EntityRow?, componentId: String = "NA") {
        self.entityName = entityName
        self.entityId = entityId
        self.entity = entity
        self.componentId = componentId
    }

    public var isErasure: Bool { entity == nil }

    /// Decodes a batch, `[{"entityName","entityId","entity"}]` with erasures as
    /// `{"entityName","entityId","isErased":1}`, in one pass: each row keeps its bytes as sent
    /// (compacted if it had whitespace), as sync records do.
    ///
    /// - Throws: `CoreError` naming the element and field (`[2].entityId`).
    public static func decodeBatch(_ json: some Collection<UInt8>) throws(CoreError) -> [LocalWrite] {
        try withRawBytes(json) { raw throws(CoreError) in
            var parser = JSONParser(raw)
            parser.skipWhitespace()
            guard !parser.atEnd, parser.peek == UInt8(ascii: "[") else {
                let found = parser.atEnd ? "nothing" : try parser.parseValue().typeName
                throw CoreError(.wrongType, "the body must be a JSON array of changes, found \(found)")
            }
            var writes: [LocalWrite] = []
            try parser.arrayElements(field: "") { _, parser throws(CoreError) in
                writes.append(try decode(&parser))
            }
            parser.skipWhitespace()
            guard parser.atEnd else { throw parser.error("unexpected data after the batch") }
            guard !writes.isEmpty else { throw CoreError(.invalidValue, "the batch is empty") }
            return writes
        }
    }

    private static func decode(_ parser: inout JSONParser) throws(CoreError) -> LocalWrite {
        guard !parser.atEnd, parser.peek == UInt8(ascii: "{") else {
            throw CoreError(.wrongType, "expected an object, found \(try parser.parseValue().typeName)")
        }
        var name: JSONValue?
        var entityId: JSONValue?
        var componentId = "NA"
        var erased = false
        var row: EntityRow?
        try parser.objectMembers { member, parser throws(CoreError) in
            switch member {
            case "entityName": name = try parser.parseValue()
            case "entityId": entityId = try parser.parseValue()
            case "componentId":
                guard case .string(let s) = try parser.parseValue() else {
                    throw CoreError(.wrongType, "expected a string", field: "componentId")
                }
                componentId = s
            case "isErased":
                switch try parser.parseValue() {
                case .null, .number("0"), .bool(false): erased = false
                case .number("1"), .bool(true): erased = true
                case let other:
                    throw CoreError(.wrongType, "expected 0 or 1, found \(other.typeName)", field: "isErased")
                }
            case "entity":
                row = try parser.entityRow()
            default:
                try parser.skipValue()
            }
        }
        guard case .string(let nameText)? = name else {
            throw CoreError(.missingField, "a string is required", field: "entityName")
        }
        guard let entityName = EntityName(rawValue: nameText) else {
            throw CoreError(.unknownEntityName, "unknown entityName '\(nameText.prefix(64))'", field: "entityName")
        }
        guard case .string(let id)? = entityId else {
            throw CoreError(.missingField, "a string is required", field: "entityId")
        }
        switch (row != nil, erased) {
        case (true, true): throw CoreError(.invalidValue, "an erasure carries no entity", field: "entity")
        case (false, false):
            throw CoreError(.missingField, "an object is required (or isErased: 1)", field: "entity")
        default:
            return LocalWrite(entityName: entityName, entityId: id, entity: row, componentId: componentId)
        }
    }
}
