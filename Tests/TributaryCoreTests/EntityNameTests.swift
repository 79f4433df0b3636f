import Testing

@testable import TributaryCore

@Suite("EntityName")
struct EntityNameTests {
    @Test("wire names")
    func wireNames() {
        #expect(
            EntityName.allCases.map(\.rawValue) == [
                "notes", "branches", "attributes", "revisions", "attachments", "blobs", "options", "etapi_tokens",
                "note_reordering",
            ])
        #expect(EntityName.etapiTokens.description == "etapi_tokens")
    }

    @Test("init(validating:) accepts only synced names")
    func validating() throws {
        for name in EntityName.allCases { #expect(try EntityName(validating: name.rawValue) == name) }
        for bad in ["", "Notes", "etapiTokens", "recent_notes", "entity_changes", "notes "] {
            let error = #expect(throws: CoreError.self) { try EntityName(validating: bad) }
            #expect(error?.code == .unknownEntityName)
        }
    }

    @Test("hashed properties match the protocol table (§2.3)")
    func hashedProperties() {
        let expected: [EntityName: [String]] = [
            .notes: ["noteId", "title", "isProtected", "type", "mime", "blobId"],
            .branches: ["branchId", "noteId", "parentNoteId", "prefix"],
            .attributes: ["attributeId", "noteId", "type", "name", "value", "isInheritable"],
            .revisions: [
                "revisionId", "noteId", "title", "isProtected", "dateLastEdited", "dateCreated", "utcDateLastEdited",
                "utcDateCreated", "utcDateModified", "blobId",
            ],
            .attachments: [
                "attachmentId", "ownerId", "role", "mime", "title", "blobId", "utcDateScheduledForErasureSince",
            ],
            .etapiTokens: ["etapiTokenId", "name", "tokenHash", "utcDateCreated", "utcDateModified", "isDeleted"],
            .options: ["name", "value"],
            .blobs: ["blobId", "content"],
            .noteReordering: [],
        ]
        for name in EntityName.allCases { #expect(name.hashedProperties == expected[name], "\(name)") }
    }

    @Test("primary keys")
    func primaryKeys() {
        let expected: [EntityName: String?] = [
            .notes: "noteId", .branches: "branchId", .attributes: "attributeId", .revisions: "revisionId",
            .attachments: "attachmentId", .blobs: "blobId", .options: "name", .etapiTokens: "etapiTokenId",
            .noteReordering: nil,
        ]
        for name in EntityName.allCases { #expect(name.primaryKey == expected[name]!, "\(name)") }
    }

    @Test("codes are stable, distinct and round-trip")
    func codes() {
        #expect(EntityName.allCases.map(\.code) == [1, 2, 3, 4, 5, 6, 7, 8, 9])
        for name in EntityName.allCases { #expect(EntityName(code: name.code) == name) }
        #expect(EntityName(code: 0) == nil)
        #expect(EntityName(code: 10) == nil)
    }

    @Test("ordering is by raw value, for names and keys")
    func ordering() {
        #expect(EntityName.allCases.sorted().map(\.rawValue) == EntityName.allCases.map(\.rawValue).sorted())
        #expect(EntityKey(.notes, "b") < EntityKey(.options, "a"))
        #expect(EntityKey(.notes, "a") < EntityKey(.notes, "b"))
        #expect(EntityKey(.etapiTokens, "z") < EntityKey(.noteReordering, "a"))
        #expect(EntityKey(.branches, "x").description == "branches/x")
    }
}
