/// Trilium's wire form of a sync record: `{"entityChange":{…},"entity":{…}}`.
///
/// Decoding checks types and names (so a bad field is reported where it is) and keeps the row's
/// bytes; `validate()` checks formats. Encoding emits Trilium's field order with 0/1 integers.
extension ChangeRecord {
    /// Decodes one wire record. An `"id"` in `entityChange` (the sender's local id) is ignored.
    ///
    /// - Throws: `CoreError` naming the field (`entityChange.isErased`, `entity`, …).
    public init(wireJSON json: some Collection<UInt8>) throws(CoreError) {
        self = try withRawBytes(json) { raw throws(CoreError) in try ChangeRecord.decode(raw) }
    }

    static func decode(_ raw: UnsafeRawBufferPointer) throws(CoreError) -> ChangeRecord {
        var parser = JSONParser(raw)
        let record = try decode(&parser)
        parser.skipWhitespace()
        guard parser.atEnd else { throw parser.error("unexpected data after the record") }
        return record
    }

    /// Decodes the record at the parser's position and leaves the parser just after it, so an
    /// array of records is read in one pass.
    static func decode(_ parser: inout JSONParser) throws(CoreError) -> ChangeRecord {
        parser.skipWhitespace()
        guard !parser.atEnd, parser.peek == UInt8(ascii: "{") else {
            throw CoreError(.wrongType, "a sync record must be a JSON object")
        }
        var fields: EntityChange.WireFields?
        var entity: EntityRow?
        try parser.objectMembers(named: { name, parser throws(CoreError) in
            if name.matches("entityChange") {
                parser.skipWhitespace()
                guard !parser.atEnd, parser.peek == UInt8(ascii: "{") else {
                    let value = try parser.parseValue()
                    throw CoreError(.wrongType, "expected an object, found \(value.typeName)", field: "entityChange")
                }
                // Read member by member into the fields it needs: no object of generic values to
                // build and search (2 allocations a record instead of 7; no faster, measured).
                var members = EntityChange.WireFields()
                try parser.nestedObjectMembers { key, parser throws(CoreError) in
                    members.set(key, try parser.parseValue())
                }
                fields = members
            } else if name.matches("entity") {
                entity = try parser.entityRow()
            } else {
                try parser.skipValue()
            }
        })
        guard let fields else {
            throw CoreError(.missingField, "the record has no entityChange", field: "entityChange")
        }
        let change: EntityChange
        do {
            change = try EntityChange(wireFields: fields)
        } catch {
            throw error.within("entityChange")
        }
        return ChangeRecord(change: change, entity: entity)
    }

    /// Appends the wire form. `id` adds Trilium's `entityChange.id`; `includeOrigin` adds
    /// `originInstanceId` (audit replay; Trilium peers never see it).
    public func writeWire(to writer: inout JSONWriter, id: EntityChangeID?, includeOrigin: Bool = false) {
        writer.raw("{\"entityChange\":")
        change.writeWire(to: &writer, id: id, originInstanceId: includeOrigin ? originInstanceId : nil)
        if let entity {
            writer.raw(",\"entity\":")
            writer.raw(entity.bytes)
        }
        writer.raw("}")
    }

    /// The wire form as bytes.
    public func wireJSON(id: EntityChangeID? = nil) -> [UInt8] {
        var writer = JSONWriter(capacity: 128 + (entity?.bytes.count ?? 0))
        writeWire(to: &writer, id: id)
        return writer.bytes
    }
}

extension EntityChange {
    /// The members of Trilium's `entityChange` object that decoding reads. With duplicate names
    /// the last one counts, as in JavaScript's `JSON.parse` (what Trilium peers read with).
    struct WireFields {
        var entityName, entityId, hash, isErased, changeId, componentId, instanceId, isSynced: JSONValue?
        var utcDateChanged, id: JSONValue?

        /// Keeps `value` as the member `key`; other members are ignored.
        mutating func set(_ key: String, _ value: JSONValue) { set(.decoded(key), value) }

        /// Keeps `value` as the member `name`, matched by length first and then as bytes.
        mutating func set(_ name: MemberName, _ value: JSONValue) {
            switch name.count {
            case 2: if name.matches("id") { id = value }
            case 4: if name.matches("hash") { hash = value }
            case 8:
                if name.matches("entityId") {
                    entityId = value
                } else if name.matches("changeId") {
                    changeId = value
                } else if name.matches("isErased") {
                    isErased = value
                } else if name.matches("isSynced") {
                    isSynced = value
                }
            case 10:
                if name.matches("entityName") {
                    entityName = value
                } else if name.matches("instanceId") {
                    instanceId = value
                }
            case 11: if name.matches("componentId") { componentId = value }
            case 14: if name.matches("utcDateChanged") { utcDateChanged = value }
            default: break
            }
        }
    }

    /// Decodes Trilium's `entityChange` object. `componentId` defaults to `"NA"` and `isSynced`
    /// to 1 when absent, as Trilium's own `putEntityChange` fills them.
    public init(wireObject o: JSONObject) throws(CoreError) {
        var fields = WireFields()
        for member in o { fields.set(member.key, member.value) }
        try self.init(wireFields: fields)
    }

    init(wireFields f: WireFields) throws(CoreError) {
        func string(_ value: JSONValue?, _ key: String) throws(CoreError) -> String {
            switch value {
            case .string(let s)?: return s
            case nil, .null?: throw CoreError(.missingField, "required", field: key)
            case let v?: throw CoreError(.wrongType, "expected a string, found \(v.typeName)", field: key)
            }
        }
        func flag(_ value: JSONValue?, _ key: String, default fallback: Bool?) throws(CoreError) -> Bool {
            switch value {
            case .bool(let b)?: return b
            case .number("0")?: return false
            case .number("1")?: return true
            case nil, .null?:
                if let fallback { return fallback }
                throw CoreError(.missingField, "required", field: key)
            case let v?:
                throw CoreError(.wrongType, "expected 0 or 1, found \(v.typeName) \(abbreviated(v))", field: key)
            }
        }
        let name = try string(f.entityName, "entityName")
        let entityName: EntityName
        do {
            entityName = try EntityName(validating: name)
        } catch {
            throw CoreError(error.code, error.message, field: "entityName")
        }
        let dateText = try string(f.utcDateChanged, "utcDateChanged")
        guard let date = UTCDateTime(dateText) else {
            throw CoreError(
                .invalidValue, "expected 'YYYY-MM-DD HH:MM:SS.sssZ', got '\(dateText.prefix(40))'",
                field: "utcDateChanged")
        }
        var componentId = "NA"
        if case .string(let s)? = f.componentId {
            componentId = s
        } else if let v = f.componentId, v != .null {
            throw CoreError(.wrongType, "expected a string, found \(v.typeName)", field: "componentId")
        }
        if let id = f.id {
            switch id {
            case .null, .number: break
            default: throw CoreError(.wrongType, "expected a number, found \(id.typeName)", field: "id")
            }
        }
        self.init(
            entityName: entityName, entityId: try string(f.entityId, "entityId"), hash: try string(f.hash, "hash"),
            isErased: try flag(f.isErased, "isErased", default: false), changeId: try string(f.changeId, "changeId"),
            componentId: componentId, instanceId: try string(f.instanceId, "instanceId"),
            isSynced: try flag(f.isSynced, "isSynced", default: true), utcDateChanged: date)
    }

    /// Appends the `entityChange` object in Trilium's column order.
    public func writeWire(to w: inout JSONWriter, id: EntityChangeID?, originInstanceId: String? = nil) {
        w.raw("{")
        var first = true
        if let id {
            w.key("id", first: true)
            w.number(id.rawValue)
            first = false
        }
        w.key("entityName", first: first)
        w.string(entityName.rawValue)
        w.key("entityId")
        w.string(entityId)
        w.key("hash")
        w.string(hash)
        w.key("isErased")
        w.number(isErased ? 1 : 0)
        w.key("changeId")
        w.string(changeId)
        w.key("componentId")
        w.string(componentId)
        w.key("instanceId")
        w.string(instanceId)
        w.key("isSynced")
        w.number(isSynced ? 1 : 0)
        w.key("utcDateChanged")
        w.string(utcDateChanged.description)
        if let originInstanceId {
            w.key("originInstanceId")
            w.string(originInstanceId)
        }
        w.raw("}")
    }
}

private func abbreviated(_ value: JSONValue) -> String {
    String(String(decoding: value.jsonBytes, as: UTF8.self).prefix(40))
}
