import Testing

@testable import TributaryCore

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

// Lines of `python3 /work/shared/bench/gen.py 3` and an erasure from `gen.py 400`.
private let genLines = [
    #"{"entityChange":{"entityName":"branches","entityId":"4xWvOdPWUuNk","hash":"7i7622Dp83","isErased":0,"changeId":"ZtokzYaDQ0YR","componentId":"8ssX9nf0Sz","instanceId":"WAcix1pMVTH3","isSynced":1,"utcDateChanged":"2024-01-01 00:00:00.000Z"},"entity":{"branchId":"4xWvOdPWUuNk","noteId":"P2tekdZqEgK9","parentNoteId":"WhEvcE0mN11R","notePosition":7510,"prefix":" in commit subscriber of page todo commit from in blob as note tr","isExpanded":0,"isDeleted":0,"deleteId":null,"utcDateModified":"2024-01-01 00:00:00.000Z"}}"#,
    #"{"entityChange":{"entityName":"branches","entityId":"2nhSO37xCIhk","hash":"9BL29DrwTG","isErased":0,"changeId":"GnzT0SRhBcYK","componentId":"fkTH8qpTeo","instanceId":"WAcix1pMVTH3","isSynced":1,"utcDateChanged":"2024-01-01 00:00:00.005Z"},"entity":{"branchId":"2nhSO37xCIhk","noteId":"88hQH8GoxNSU","parentNoteId":"YrqVoj7S6V6g","notePosition":9960,"prefix":"te at commit project hash blob branch tail and log durable stream at blob sync and done client revision on sync on protocol to t","isExpanded":1,"isDeleted":0,"deleteId":null,"utcDateModified":"2024-01-01 00:00:00.005Z"}}"#,
    #"{"entityChange":{"entityName":"attributes","entityId":"Tp7Nq9HU6mu3","hash":"aWA9S9pDE4","isErased":0,"changeId":"yH3rzEBCIRgD","componentId":"eozs2oIMPT","instanceId":"uscaTnAYghRm","isSynced":1,"utcDateChanged":"2024-01-01 00:00:00.010Z"},"entity":{"attributeId":"Tp7Nq9HU6mu3","noteId":"u9gy65IGL4C5","type":"relation","name":"page","value":"draft protocol write tail trilium the draft sync hash index protocol journal durable","position":670,"utcDateModified":"2024-01-01 00:00:00.010Z","isDeleted":0,"deleteId":null,"isInheritable":0}}"#,
    #"{"entityChange":{"entityName":"attributes","entityId":"NgI7vGpwTeKC","hash":"tV5O5LRdhd","isErased":1,"changeId":"UpR3JrQH9cim","componentId":"HhizN5ahWv","instanceId":"uscaTnAYghRm","isSynced":1,"utcDateChanged":"2024-01-01 00:00:00.370Z"}}"#,
]

private let baseChange: JSONObject = [
    "entityName": .string("notes"), "entityId": .string("Kx9fQ2mLp0Ab"), "hash": .string("1SegZ6/dVQ"),
    "isErased": .number("0"), "changeId": .string("ChAnGe000001"), "componentId": .string("NA"),
    "instanceId": .string("InStAnCe0001"), "isSynced": .number("1"),
    "utcDateChanged": .string("2023-11-08 16:43:44.204Z"),
]

private let baseEntityText = #"{"noteId":"Kx9fQ2mLp0Ab","title":"Meeting notes","isProtected":0}"#

/// A wire record from `baseChange` with members replaced (`nil` removes), and raw entity text.
private func wire(_ changes: KeyValuePairs<String, JSONValue?> = [:], entity: String? = baseEntityText) -> [UInt8] {
    var change = baseChange
    for (key, value) in changes { change[key] = value }
    var text = #"{"entityChange":"# + String(decoding: JSONValue.object(change).jsonBytes, as: UTF8.self)
    if let entity { text += #","entity":"# + entity }
    return bytes(text + "}")
}

struct BadWire: Sendable, CustomTestStringConvertible {
    var label: String
    var input: [UInt8]
    var code: CoreError.Code
    var field: String?
    init(_ label: String, _ input: [UInt8], _ code: CoreError.Code, _ field: String?) {
        self.label = label
        self.input = input
        self.code = code
        self.field = field
    }
    var testDescription: String { label }
}

let badWireInputs: [BadWire] = [
    BadWire(
        "unknown entityName", wire(["entityName": .string("widgets")]), .unknownEntityName, "entityChange.entityName"),
    BadWire(
        "entityName in the wrong case", wire(["entityName": .string("Notes")]), .unknownEntityName,
        "entityChange.entityName"),
    BadWire("entityName a number", wire(["entityName": .number("5")]), .wrongType, "entityChange.entityName"),
    BadWire("entityName missing", wire(["entityName": nil]), .missingField, "entityChange.entityName"),
    BadWire("isErased \"yes\"", wire(["isErased": .string("yes")]), .wrongType, "entityChange.isErased"),
    BadWire("isErased \"1\"", wire(["isErased": .string("1")]), .wrongType, "entityChange.isErased"),
    BadWire("isErased 2", wire(["isErased": .number("2")]), .wrongType, "entityChange.isErased"),
    BadWire("isSynced \"true\"", wire(["isSynced": .string("true")]), .wrongType, "entityChange.isSynced"),
    BadWire("changeId missing", wire(["changeId": nil]), .missingField, "entityChange.changeId"),
    BadWire("changeId null", wire(["changeId": .null]), .missingField, "entityChange.changeId"),
    BadWire("changeId a number", wire(["changeId": .number("123")]), .wrongType, "entityChange.changeId"),
    BadWire("entityId missing", wire(["entityId": nil]), .missingField, "entityChange.entityId"),
    BadWire("hash missing", wire(["hash": nil]), .missingField, "entityChange.hash"),
    BadWire("instanceId missing", wire(["instanceId": nil]), .missingField, "entityChange.instanceId"),
    BadWire("instanceId an array", wire(["instanceId": .array([])]), .wrongType, "entityChange.instanceId"),
    BadWire("utcDateChanged missing", wire(["utcDateChanged": nil]), .missingField, "entityChange.utcDateChanged"),
    BadWire(
        "utcDateChanged with T", wire(["utcDateChanged": .string("2023-11-08T16:43:44.204Z")]), .invalidValue,
        "entityChange.utcDateChanged"),
    BadWire(
        "utcDateChanged not a day", wire(["utcDateChanged": .string("2023-02-29 00:00:00.000Z")]), .invalidValue,
        "entityChange.utcDateChanged"),
    BadWire(
        "utcDateChanged a number", wire(["utcDateChanged": .number("1699461824204")]), .wrongType,
        "entityChange.utcDateChanged"),
    BadWire("componentId a number", wire(["componentId": .number("7")]), .wrongType, "entityChange.componentId"),
    BadWire("id a string", wire(["id": .string("12")]), .wrongType, "entityChange.id"),
    BadWire("entity an array", wire(entity: "[]"), .wrongType, "entity"),
    BadWire("entity a string", wire(entity: #""x""#), .wrongType, "entity"),
    BadWire("entity a number", wire(entity: "1"), .wrongType, "entity"),
    BadWire("entity true", wire(entity: "true"), .wrongType, "entity"),
    BadWire("entity malformed", wire(entity: #"{"noteId":}"#), .malformedJSON, nil),
    BadWire("entity with whitespace malformed", wire(entity: #"{ "noteId" : }"#), .malformedJSON, nil),
    BadWire("entity unterminated", bytes(#"{"entity":{"noteId":"x""#), .malformedJSON, nil),
    BadWire("record truncated", Array(wire().dropLast()), .malformedJSON, nil),
    BadWire("record followed by data", wire() + bytes("x"), .malformedJSON, nil),
    BadWire("two records", wire() + wire(), .malformedJSON, nil),
    BadWire("record trailing comma", bytes(#"{"entityChange":{},}"#), .malformedJSON, nil),
    BadWire("unknown member with invalid value", bytes(#"{"x":tru}"#), .malformedJSON, nil),
    BadWire("record an array", bytes("[]"), .wrongType, nil),
    BadWire("record empty", bytes(""), .wrongType, nil),
    BadWire("record without entityChange", bytes("{}"), .missingField, "entityChange"),
    BadWire("entityChange an array", bytes(#"{"entityChange":[]}"#), .wrongType, "entityChange"),
    BadWire("entityChange null", bytes(#"{"entityChange":null}"#), .wrongType, "entityChange"),
]

private func note(
    entityId: String = "Kx9fQ2mLp0Ab", hash: String = "1SegZ6/dVQ", isErased: Bool = false,
    changeId: String = "ChAnGe000001", componentId: String = "NA", instanceId: String = "InStAnCe0001",
    name: EntityName = .notes, entity: JSONObject? = ["noteId": .string("Kx9fQ2mLp0Ab"), "title": .string("T")],
    origin: String? = nil
) -> ChangeRecord {
    let change = EntityChange(
        entityName: name, entityId: entityId, hash: hash, isErased: isErased, changeId: changeId,
        componentId: componentId, instanceId: instanceId,
        utcDateChanged: UTCDateTime(millisecondsSinceEpoch: 1_699_461_824_204))
    return ChangeRecord(change: change, entity: entity.map(EntityRow.init), originInstanceId: origin)
}

struct BadRecord: Sendable, CustomTestStringConvertible {
    var label: String
    var record: ChangeRecord
    var limits: ChangeLimits
    var code: CoreError.Code
    var field: String
    init(
        _ label: String, _ record: ChangeRecord, limits: ChangeLimits = .default, _ code: CoreError.Code,
        _ field: String
    ) {
        self.label = label
        self.record = record
        self.limits = limits
        self.code = code
        self.field = field
    }
    var testDescription: String { label }
}

let badRecords: [BadRecord] = [
    BadRecord("entityId with a space", note(entityId: "abc def"), .invalidValue, "entityChange.entityId"),
    BadRecord("entityId with a slash", note(entityId: "abc/def"), .invalidValue, "entityChange.entityId"),
    BadRecord("entityId empty", note(entityId: ""), .invalidValue, "entityChange.entityId"),
    BadRecord("entityId non-ASCII", note(entityId: "caf\u{e9}"), .invalidValue, "entityChange.entityId"),
    BadRecord(
        "entityId of 129 characters", note(entityId: String(repeating: "a", count: 129)), .invalidValue,
        "entityChange.entityId"),
    BadRecord(
        "entityId longer than a custom limit", note(entityId: "abcdef"), limits: ChangeLimits(maxEntityIdLength: 5),
        .invalidValue, "entityChange.entityId"),
    BadRecord("hash empty", note(hash: ""), .invalidValue, "entityChange.hash"),
    BadRecord("hash with a space", note(hash: "ab cd"), .invalidValue, "entityChange.hash"),
    BadRecord(
        "hash of 65 characters", note(hash: String(repeating: "h", count: 65)), .invalidValue, "entityChange.hash"),
    BadRecord("changeId with '-'", note(changeId: "abc-def"), .invalidValue, "entityChange.changeId"),
    BadRecord("changeId with '_'", note(changeId: "abc_def"), .invalidValue, "entityChange.changeId"),
    BadRecord("changeId empty", note(changeId: ""), .invalidValue, "entityChange.changeId"),
    BadRecord("componentId empty", note(componentId: ""), .invalidValue, "entityChange.componentId"),
    BadRecord("componentId with a space", note(componentId: "Note Tree"), .invalidValue, "entityChange.componentId"),
    BadRecord("instanceId with '-'", note(instanceId: "in-stance"), .invalidValue, "entityChange.instanceId"),
    BadRecord("originInstanceId with a space", note(origin: "x y"), .invalidValue, "originInstanceId"),
    BadRecord("erasure carrying an entity", note(isErased: true), .invalidValue, "entity"),
    BadRecord("note without an entity", note(entity: nil), .missingField, "entity"),
    BadRecord(
        "entity primary key mismatch", note(entity: ["noteId": .string("Other0000000")]), .invalidValue, "entity.noteId"
    ),
    BadRecord("entity primary key missing", note(entity: ["title": .string("T")]), .missingField, "entity.noteId"),
    BadRecord("entity primary key a number", note(entity: ["noteId": .number("1")]), .wrongType, "entity.noteId"),
    BadRecord("entity primary key null", note(entity: ["noteId": .null]), .wrongType, "entity.noteId"),
    BadRecord(
        "branch primary key mismatch",
        note(entityId: "root_abc", name: .branches, entity: ["branchId": .string("root_abd")]), .invalidValue,
        "entity.branchId"),
    BadRecord(
        "option primary key is its name",
        note(entityId: "theme", name: .options, entity: ["name": .string("locale"), "value": .string("en")]),
        .invalidValue, "entity.name"),
    BadRecord(
        "blob primary key missing", note(entityId: "bL0b", name: .blobs, entity: ["content": .string("")]),
        .missingField, "entity.blobId"),
    BadRecord(
        "etapi token primary key mismatch",
        note(entityId: "EtApItOkEn01", name: .etapiTokens, entity: ["etapiTokenId": .string("EtApItOkEn02")]),
        .invalidValue, "entity.etapiTokenId"),
    BadRecord(
        "attribute primary key mismatch",
        note(entityId: "At7rIbUtE0x1", name: .attributes, entity: ["attributeId": .string("x")]),
        .invalidValue, "entity.attributeId"),
    BadRecord(
        "revision primary key mismatch",
        note(entityId: "Rev1sion0001", name: .revisions, entity: ["revisionId": .string("x")]),
        .invalidValue, "entity.revisionId"),
    BadRecord(
        "attachment primary key mismatch",
        note(entityId: "AttAch000001", name: .attachments, entity: ["attachmentId": .string("x")]),
        .invalidValue, "entity.attachmentId"),
    BadRecord(
        "entity larger than the limit", note(), limits: ChangeLimits(maxEntityBytes: 10), .tooLarge, "entity"),
    BadRecord(
        "note_reordering position a string",
        note(
            entityId: "root", hash: "N/A", name: .noteReordering,
            entity: ["root_a": .number("1"), "root_b": .string("2")]),
        .wrongType, "entity.root_b"),
    BadRecord(
        "note_reordering position fractional",
        note(entityId: "root", hash: "N/A", name: .noteReordering, entity: ["root_a": .number("1.5")]),
        .wrongType, "entity.root_a"),
    BadRecord(
        "note_reordering position with exponent",
        note(entityId: "root", hash: "N/A", name: .noteReordering, entity: ["root_a": .number("1e2")]),
        .wrongType, "entity.root_a"),
    BadRecord(
        "note_reordering position null",
        note(entityId: "root", hash: "N/A", name: .noteReordering, entity: ["root_a": .null]),
        .wrongType, "entity.root_a"),
]

@Suite("Wire coding")
struct WireCodingTests {
    @Test("a gen.py record decodes field by field")
    func decodeGenLine() throws {
        let record = try ChangeRecord(wireJSON: bytes(genLines[0]))
        let c = record.change
        #expect(c.entityName == .branches)
        #expect(c.entityId == "4xWvOdPWUuNk")
        #expect(c.hash == "7i7622Dp83")
        #expect(c.isErased == false)
        #expect(c.changeId == "ZtokzYaDQ0YR")
        #expect(c.componentId == "8ssX9nf0Sz")
        #expect(c.instanceId == "WAcix1pMVTH3")
        #expect(c.isSynced == true)
        #expect(c.utcDateChanged.millisecondsSinceEpoch == 1_704_067_200_000)
        #expect(c.key == EntityKey(.branches, "4xWvOdPWUuNk"))
        #expect(record.originInstanceId == "WAcix1pMVTH3")
        let entity = try #require(record.entity)
        #expect(
            entity.text
                == #"{"branchId":"4xWvOdPWUuNk","noteId":"P2tekdZqEgK9","parentNoteId":"WhEvcE0mN11R","notePosition":7510,"prefix":" in commit subscriber of page todo commit from in blob as note tr","isExpanded":0,"isDeleted":0,"deleteId":null,"utcDateModified":"2024-01-01 00:00:00.000Z"}"#
        )
        #expect(entity.value(forKey: "notePosition") == .number("7510"))
        #expect(throws: Never.self) { try record.validate() }
    }

    @Test("gen.py records round-trip byte for byte", arguments: genLines)
    func roundTrip(line: String) throws {
        let record = try ChangeRecord(wireJSON: bytes(line))
        #expect(record.wireJSON() == bytes(line))
        #expect(try ChangeRecord(wireJSON: record.wireJSON()) == record)
        #expect(throws: Never.self) { try record.validate() }
    }

    @Test("an erasure decodes without an entity")
    func erasure() throws {
        let record = try ChangeRecord(wireJSON: bytes(genLines[3]))
        #expect(record.change.isErased)
        #expect(record.change.entityName == .attributes)
        #expect(record.entity == nil)
        let withNull = try ChangeRecord(wireJSON: wire(["isErased": .number("1")], entity: "null"))
        #expect(withNull.entity == nil)
        #expect(withNull.change.isErased)
    }

    @Test("wireJSON(id:) puts Trilium's id first")
    func wireWithId() throws {
        let record = try ChangeRecord(wireJSON: bytes(genLines[3]))
        #expect(
            record.wireJSON(id: 42)
                == bytes(
                    #"{"entityChange":{"id":42,"entityName":"attributes","entityId":"NgI7vGpwTeKC","hash":"tV5O5LRdhd","isErased":1,"changeId":"UpR3JrQH9cim","componentId":"HhizN5ahWv","instanceId":"uscaTnAYghRm","isSynced":1,"utcDateChanged":"2024-01-01 00:00:00.370Z"}}"#
                ))
    }

    @Test("includeOrigin appends originInstanceId to the entityChange")
    func writeWithOrigin() throws {
        var record = try ChangeRecord(wireJSON: wire())
        record.originInstanceId = "OrIgIn000001"
        var writer = JSONWriter()
        record.writeWire(to: &writer, id: 7, includeOrigin: true)
        #expect(
            writer.bytes
                == bytes(
                    #"{"entityChange":{"id":7,"entityName":"notes","entityId":"Kx9fQ2mLp0Ab","hash":"1SegZ6/dVQ","isErased":0,"changeId":"ChAnGe000001","componentId":"NA","instanceId":"InStAnCe0001","isSynced":1,"utcDateChanged":"2023-11-08 16:43:44.204Z","originInstanceId":"OrIgIn000001"},"entity":"#
                        + baseEntityText + "}"))
    }

    @Test("an id in entityChange is ignored")
    func idIgnored() throws {
        let plain = try ChangeRecord(wireJSON: wire())
        for id: JSONValue in [.number("12345"), .null, .number("9007199254740991")] {
            let withId = try ChangeRecord(wireJSON: wire(["id": id]))
            #expect(withId == plain)
            #expect(withId.wireJSON() == wire())
        }
    }

    @Test("unknown entity fields are preserved byte for byte")
    func unknownEntityFields() throws {
        let entity =
            #"{"noteId":"Kx9fQ2mLp0Ab","futureColumn":{"nested":[1,2.50,null,"\u00e9"]},"title":"caf\u00e9 \/ x","description":"e\#u{301}","isProtected":0}"#
        let record = try ChangeRecord(wireJSON: wire(entity: entity))
        #expect(record.entity?.bytes == bytes(entity))
        #expect(record.wireJSON() == wire(entity: entity))
        #expect(
            record.entity?.value(forKey: "futureColumn")
                == .object(["nested": .array([.number("1"), .number("2.50"), .null, .string("\u{e9}")])]))
    }

    @Test("an entity with whitespace is stored compactly, unknown fields included")
    func spacedEntity() throws {
        let record = try ChangeRecord(
            wireJSON: wire(entity: "{ \"noteId\" : \"Kx9fQ2mLp0Ab\",\n  \"extra\": [ 1, 2 ] }"))
        #expect(record.entity?.bytes == bytes(#"{"noteId":"Kx9fQ2mLp0Ab","extra":[1,2]}"#))
    }

    @Test("a pretty-printed record decodes and re-encodes compactly")
    func prettyRecord() throws {
        let pretty = """
            {
              "entity": {"noteId":"Kx9fQ2mLp0Ab","title":"Meeting notes","isProtected":0},
              "extra": [1, {"a": null}],
              "entityChange": {
                "entityName": "notes", "entityId": "Kx9fQ2mLp0Ab", "hash": "1SegZ6/dVQ", "isErased": 0,
                "changeId": "ChAnGe000001", "componentId": "NA", "instanceId": "InStAnCe0001",
                "isSynced": 1, "utcDateChanged": "2023-11-08 16:43:44.204Z"
              }
            }
            """
        let record = try ChangeRecord(wireJSON: bytes(pretty))
        #expect(record.wireJSON() == wire())
    }

    @Test(
        "isErased and isSynced accept true/false and 0/1, and are written as 0/1",
        arguments: [
            (JSONValue.bool(true), true, "1"), (.bool(false), false, "0"), (.number("1"), true, "1"),
            (.number("0"), false, "0"),
        ])
    func flags(value: JSONValue, expected: Bool, written: String) throws {
        let erased = try ChangeRecord(wireJSON: wire(["isErased": value], entity: nil))
        #expect(erased.change.isErased == expected)
        #expect(String(decoding: erased.wireJSON(), as: UTF8.self).contains(#""isErased":"# + written + ","))
        let synced = try ChangeRecord(wireJSON: wire(["isSynced": value]))
        #expect(synced.change.isSynced == expected)
        #expect(String(decoding: synced.wireJSON(), as: UTF8.self).contains(#""isSynced":"# + written + ","))
    }

    @Test("absent optional fields take Trilium's defaults")
    func defaults() throws {
        let record = try ChangeRecord(wireJSON: wire(["componentId": nil, "isSynced": nil, "isErased": nil]))
        #expect(record.change.componentId == "NA")
        #expect(record.change.isSynced == true)
        #expect(record.change.isErased == false)
        let nulls = try ChangeRecord(wireJSON: wire(["componentId": .null, "isSynced": .null, "isErased": .null]))
        #expect(nulls.change == record.change)
    }

    @Test("every entity name decodes", arguments: EntityName.allCases)
    func entityNames(name: EntityName) throws {
        let record = try ChangeRecord(wireJSON: wire(["entityName": .string(name.rawValue)], entity: nil))
        #expect(record.change.entityName == name)
    }

    @Test("bad input fails with its own code and field", arguments: badWireInputs)
    func badInput(_ bad: BadWire) {
        let error = #expect(throws: CoreError.self) { try ChangeRecord(wireJSON: bad.input) }
        #expect(error?.code == bad.code)
        #expect(error?.field == bad.field)
    }

    @Test("duplicate member names resolve like JSON.parse: the last one wins")
    func duplicateMembers() throws {
        // Trilium parses records with JSON.parse, which keeps the last of duplicate names.
        let text =
            #"{"entityChange":{"entityName":"notes","entityId":"AAAAAAAAAAAA","entityId":"Kx9fQ2mLp0Ab","hash":"1SegZ6/dVQ","isErased":0,"changeId":"ChAnGe000001","componentId":"NA","instanceId":"InStAnCe0001","isSynced":1,"utcDateChanged":"2023-11-08 16:43:44.204Z"},"entity":{"noteId":"AAAAAAAAAAAA","noteId":"Kx9fQ2mLp0Ab"}}"#
        let record = try ChangeRecord(wireJSON: bytes(text))
        #expect(record.change.entityId == "Kx9fQ2mLp0Ab")
        #expect(record.entity?.value(forKey: "noteId") == .string("Kx9fQ2mLp0Ab"))
        #expect(throws: Never.self) { try record.validate() }
    }

    @Test("member names written with escapes match as their text does; other names are skipped")
    func escapedMemberNames() throws {
        // Names are compared as bytes when written plainly; escaped (or non-ASCII) ones are
        // decoded first, as JSON.parse does, so both spellings mean the same member.
        let text =
            #"{"entit\u0079Change":{"entityName":"notes","entity\u0049d":"Kx9fQ2mLp0Ab","hash":"1SegZ6/dVQ","is\u0045rased":0,"changeId":"ChAnGe000001","componentId":"NA","instanceId":"InStAnCe0001","is\u0053ynced":0,"utcDateChanged":"2023-11-08 16:43:44.204Z","caf\u00e9":1,"thé":2},"\u0065ntity":{"noteId":"Kx9fQ2mLp0Ab"},"entité":null}"#
        let record = try ChangeRecord(wireJSON: bytes(text))
        #expect(record.change.entityId == "Kx9fQ2mLp0Ab")
        #expect(record.change.isErased == false)
        #expect(record.change.isSynced == false)
        #expect(record.entity?.value(forKey: "noteId") == .string("Kx9fQ2mLp0Ab"))
        // A name that is not well-formed is refused, even where it would be skipped.
        let bad = #"{"entityChange":{"entityName":"notes","ent\u12":1}}"#
        #expect(throws: CoreError.self) { try ChangeRecord(wireJSON: bytes(bad)) }
        let control = "{\"entityChange\":{\"a\u{1}b\":1}}"
        #expect(throws: CoreError.self) { try ChangeRecord(wireJSON: bytes(control)) }
    }

    @Test("the error for a bad date names the field and quotes the value")
    func errorDescription() {
        let error = #expect(throws: CoreError.self) {
            try ChangeRecord(wireJSON: wire(["utcDateChanged": .string("yesterday")]))
        }
        #expect(
            error?.description
                == "entityChange.utcDateChanged: expected 'YYYY-MM-DD HH:MM:SS.sssZ', got 'yesterday'")
    }

    // MARK: validate()

    @Test("validation refuses each bad record with its own code and field", arguments: badRecords)
    func validationFailures(_ bad: BadRecord) {
        let error = #expect(throws: CoreError.self) { try bad.record.validate(bad.limits) }
        #expect(error?.code == bad.code)
        #expect(error?.field == bad.field)
    }

    @Test("valid records pass validation")
    func validationPasses() throws {
        let valid: [(ChangeRecord, ChangeLimits)] = [
            (note(), .default),
            (note(isErased: true, entity: nil), .default),
            (note(componentId: "NoteTree-abc12345"), .default),
            (note(hash: String(repeating: "h", count: 64)), .default),
            (note(origin: "OrIgIn000001"), .default),
            (
                note(
                    entityId: String(repeating: "a", count: 128),
                    entity: ["noteId": .string(String(repeating: "a", count: 128))]),
                .default
            ),
            (note(entityId: "_lbRoot", entity: ["noteId": .string("_lbRoot")]), .default),
            (note(entityId: "a.b:c-d_e", entity: ["noteId": .string("a.b:c-d_e")]), .default),
            (note(entityId: "root_Kx9f", name: .branches, entity: ["branchId": .string("root_Kx9f")]), .default),
            (
                note(entityId: "theme", name: .options, entity: ["name": .string("theme"), "value": .string("dark")]),
                .default
            ),
            (note(entityId: "theme", name: .options, entity: nil), .default),
            (
                note(
                    entityId: "root", hash: "N/A", name: .noteReordering,
                    entity: ["root_a": .number("10"), "root_b": .number("-20"), "root_c": .number("0")]), .default
            ),
            (note(entityId: "root", hash: "N/A", name: .noteReordering, entity: [:]), .default),
        ]
        for (record, limits) in valid {
            #expect(throws: Never.self) { try record.validate(limits) }
        }
        // A row exactly at the size limit passes; one byte less fails.
        let record = note()
        let size = try #require(record.entity).bytes.count
        #expect(throws: Never.self) { try record.validate(ChangeLimits(maxEntityBytes: size)) }
        #expect(throws: CoreError.self) { try record.validate(ChangeLimits(maxEntityBytes: size - 1)) }
    }

    @Test("decoded gen.py records pass validation with default limits")
    func genLinesValidate() throws {
        for line in genLines {
            #expect(throws: Never.self) { try ChangeRecord(wireJSON: bytes(line)).validate() }
        }
    }

    @Test("CoreError.within prefixes the field")
    func within() {
        #expect(CoreError(.missingField, "m", field: "x").within("entityChange").field == "entityChange.x")
        #expect(CoreError(.missingField, "m").within("entity").field == "entity")
        #expect(CoreError(.tooLarge, "big").description == "big")
        #expect(CoreError(.tooLarge, "big", field: "entity").description == "entity: big")
    }
}

@Suite("Local write batches")
struct LocalWriteBatchTests {
    @Test("a batch decodes in order: rows verbatim, erasures, componentId, unknown members skipped")
    func decodesABatch() throws {
        let row = #"{"noteId":"n1","title":"caf\u00e9 \"x\"","future":{"a":[1,2.50]}}"#
        let batch = """
            [{"entityName":"notes","entityId":"n1","entity":\(row),"note":"ignored"},
             { "entityId" : "b1", "entityName" : "branches", "entity" : { "prefix" : null } , "componentId":"c7"},
             {"entityName":"notes","entityId":"n2","isErased":1},
             {"entityName":"notes","entityId":"n3","isErased":true,"entity":null}]
            """
        let writes = try LocalWrite.decodeBatch(Array(batch.utf8))
        #expect(writes.map(\.entityId) == ["n1", "b1", "n2", "n3"])
        #expect(writes[0].entity?.bytes == Array(row.utf8))
        #expect(writes[1].entity?.bytes == Array(#"{"prefix":null}"#.utf8))
        #expect(writes[1].entityName == .branches && writes[1].componentId == "c7" && writes[0].componentId == "NA")
        #expect(writes[2].isErasure && writes[3].isErasure)
    }

    @Test(
        "bad batches are refused naming the element and field",
        arguments: [
            ("", "the body must be a JSON array of changes, found nothing"),
            (#"{"a":1}"#, "the body must be a JSON array of changes, found object"),
            ("[]", "the batch is empty"),
            ("[1]", "[0]: expected an object, found number"),
            (#"[{"entityId":"n1","entity":{}}]"#, "[0].entityName: a string is required"),
            (
                #"[{"entityName":"widgets","entityId":"n1","entity":{}}]"#,
                "[0].entityName: unknown entityName 'widgets'"
            ),
            (#"[{"entityName":"notes","entityId":5,"entity":{}}]"#, "[0].entityId: a string is required"),
            (#"[{"entityName":"notes","entityId":"n1"}]"#, "[0].entity: an object is required (or isErased: 1)"),
            (#"[{"entityName":"notes","entityId":"n1","entity":[1]}]"#, "[0].entity: expected an object, found array"),
            (
                #"[{"entityName":"notes","entityId":"n1","entity":{},"isErased":1}]"#,
                "[0].entity: an erasure carries no entity"
            ),
            (
                #"[{"entityName":"notes","entityId":"n1","isErased":"yes"}]"#,
                "[0].isErased: expected 0 or 1, found string"
            ),
            (
                #"[{"entityName":"notes","entityId":"n1","entity":{},"componentId":3}]"#,
                "[0].componentId: expected a string"
            ),
            (#"[{"entityName":"notes","entityId":"n1","entity":{}}] x"#, "unexpected data after the batch"),
            (#"[{"entityName":"notes","entityId":"n1","entity":{"a":}}]"#, "malformed JSON"),
        ])
    func refusesBadBatches(body: String, message: String) {
        #expect {
            _ = try LocalWrite.decodeBatch(Array(body.utf8))
        } throws: { "\($0)".contains(message) }
    }
}
