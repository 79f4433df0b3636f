import EventLog
import Foundation
import GRDB
import Logging
import Projections
import Sync
import Synchronization
import Testing
import Tributary
import TributaryCore
import TributaryTesting

let logger = Logger(label: "test")

func date(_ ms: Int) -> UTCDateTime { UTCDateTime(millisecondsSinceEpoch: 1_735_689_600_000 + Int64(ms)) }

/// A remote change of any entity, at `ms` after 2025-01-01.
func change(_ name: EntityName, _ id: String, at ms: Int, row: JSONObject? = nil, erased: Bool = false) -> ChangeRecord
{
    let c = EntityChange(
        entityName: name, entityId: id, hash: "h\(ms)", isErased: erased, changeId: RandomID.make(),
        instanceId: "peerInstance1", utcDateChanged: date(ms))
    var entity = row
    if !erased, entity == nil, let key = name.primaryKey { entity = [key: .string(id), "title": .string("v\(ms)")] }
    if let key = name.primaryKey, var e = entity, e[key] == nil { e[key] = .string(id); entity = e }
    return ChangeRecord(change: c, entity: erased ? nil : entity.map(EntityRow.init))
}

/// Every kind of change a projector must handle: inserts of every table, updates, erasures,
/// unknown columns, reordering, and a re-created entity.
func scriptedChanges() -> [[ChangeRecord]] {
    [
        [
            change(
                .notes, "n1", at: 1,
                row: ["title": .string("First"), "isProtected": .number(0), "type": .string("text")]),
            change(.notes, "n2", at: 2, row: ["title": .string("Second"), "futureColumn": .string("kept")]),
            change(
                .branches, "b1", at: 3,
                row: ["noteId": .string("n1"), "parentNoteId": .string("root"), "notePosition": .number(10)]),
            change(
                .branches, "b2", at: 4,
                row: ["noteId": .string("n2"), "parentNoteId": .string("root"), "notePosition": .number(20)]),
            change(
                .attributes, "a1", at: 5,
                row: [
                    "noteId": .string("n1"), "name": .string("color"), "value": .string("red"),
                    "isInheritable": .bool(true),
                ]),
            change(.revisions, "r1", at: 6),
            change(.attachments, "t1", at: 7),
            change(
                .blobs, "bl1", at: 8, row: ["content": .string("aGVsbG8gd29ybGQ="), "utcDateModified": .string("x")]),
            change(.options, "theme", at: 9, row: ["value": .string("dark"), "isSynced": .number(1)]),
            change(.etapiTokens, "e1", at: 10),
        ],
        [
            change(.notes, "n1", at: 20, row: ["title": .string("First, edited"), "isDeleted": .number(0)]),
            change(.attributes, "a1", at: 21, erased: true),
            ChangeRecord(
                change: EntityChange(
                    entityName: .noteReordering, entityId: "root", hash: "N/A", changeId: RandomID.make(),
                    instanceId: "peerInstance1", utcDateChanged: date(22)),
                entity: EntityRow(["b1": .number(200), "b2": .number(100), "gone": .number(5)] as JSONObject)),
            change(.revisions, "r1", at: 23, erased: true),
        ],
        [
            change(
                .attributes, "a1", at: 30,
                row: ["noteId": .string("n2"), "name": .string("icon"), "value": .string("bx")]),
            change(
                .branches, "b1", at: 31,
                row: ["noteId": .string("n1"), "parentNoteId": .string("root"), "notePosition": .number(7)]),
            change(.blobs, "bl1", at: 32, row: ["content": .string("not base64 at all!")]),
        ],
    ]
}

/// A store with its views, in a temporary directory.
func withStore(_ body: (Store, String) async throws -> Void) async throws {
    try await withTemporaryDirectory { dir in
        let store = try Store(dataDirectory: dir + "/data", logger: logger)
        defer { store.close() }
        try await body(store, dir)
    }
}

func digests(_ views: ViewStore, _ projector: any Projector) async throws -> [String: ViewVerifier.Digest] {
    try await views.pool.read { db in
        try Dictionary(uniqueKeysWithValues: projector.tables.map { ($0.name, try ViewVerifier.digest(db, $0)) })
    }
}

/// What one projector's view holds for an entity, read through each view's own key: `read` is
/// nil when the view has no row for it. `reflects` says whether a row holds what `change` says;
/// `keepsErasures` whether an erased entity keeps a row (marked erased) or loses it.
struct EntityProbe: Sendable {
    var read: @Sendable (Database, EntityKey) throws -> Row?
    var reflects: @Sendable (Row, ChangeRecord) -> Bool
    var keepsErasures: Bool

    static func of(_ projector: String) -> EntityProbe {
        switch projector {
        case "trilium":
            return EntityProbe(
                read: { db, key in
                    try Row.fetchOne(
                        db, sql: "SELECT * FROM \(key.name.rawValue) WHERE \(key.name.primaryKey!) = ?",
                        arguments: [key.id])
                },
                reflects: { row, record in
                    // The row's text columns are the change's (numbers may be reordered and blob
                    // content is decoded, so those are left to the digest comparisons).
                    guard let members = try? record.entity?.object() else { return false }
                    return members.allSatisfy { member in
                        guard case .string(let text) = member.value, member.key != "content", row.hasColumn(member.key)
                        else { return true }
                        return row[member.key] as String? == text
                    }
                }, keepsErasures: false)
        default:
            return EntityProbe(
                read: { db, key in
                    try Row.fetchOne(
                        db, sql: "SELECT * FROM entity_changes WHERE entityName = ? AND entityId = ?",
                        arguments: [key.name.rawValue, key.id])
                },
                reflects: { row, record in
                    row["changeId"] as String? == record.change.changeId && row["hash"] as String? == record.change.hash
                        && row["isErased"] as Int? == (record.change.isErased ? 1 : 0)
                }, keepsErasures: true)
        }
    }
}

/// One suite, run for every projector: apply, update, erase, replay after restart, and a
/// rebuild equals the live view.
@Suite struct ProjectorConformanceTests {
    static let names = StandardProjectors.all.map(\.name)

    /// After each batch, every entity with a row of its own holds its latest change: an update
    /// shows, and an erased entity has no live row.
    func expectEntitiesAtTheirLatest(
        _ views: ViewStore, _ name: String, after batches: ArraySlice<[ChangeRecord]>
    ) async throws {
        let probe = EntityProbe.of(name)
        var seen: [EntityKey: ChangeRecord] = [:]
        for record in batches.joined() where record.change.entityName.primaryKey != nil {
            seen[record.change.key] = record
        }
        let latest = seen
        try await views.pool.read { db in
            for (key, record) in latest {
                let row = try probe.read(db, key)
                if record.change.isErased && !probe.keepsErasures {
                    #expect(row == nil, "\(name): erased \(key) still has a row")
                    continue
                }
                let found = try #require(row, "\(name): no row for \(key)")
                #expect(probe.reflects(found, record), "\(name): \(key) is not at \(record.change.hash): \(found)")
            }
        }
    }

    @Test(arguments: names) func liveViewEqualsARebuildThroughEveryKindOfChange(_ name: String) async throws {
        try await withTemporaryDirectory { dir in
            let projector = try #require(try StandardProjectors.named([name]).first)
            let script = scriptedChanges()
            var live: [String: ViewVerifier.Digest] = [:]
            let checkpoint: EntityChangeID
            do {
                let store = try Store(dataDirectory: dir + "/data", logger: logger)
                let runner = ProjectionRunner(
                    log: store.log, views: store.views!, projectors: [projector], batchSize: 3, logger: logger)
                try await runner.prepare()
                for (i, batch) in script.prefix(2).enumerated() {
                    _ = try await store.applier.applyRemote(batch, from: .peer(instanceId: "peerInstance1"))
                    try await runner.catchUp()
                    try await expectEntitiesAtTheirLatest(store.views!, name, after: script[...i])
                }
                checkpoint = try #require(runner.checkpoints[name])
                #expect(checkpoint == store.log.head)
                store.close()
            }
            // Replay after a restart continues from the checkpoint: it is read back as it was, and
            // only the changes after it are projected.
            let store = try Store(dataDirectory: dir + "/data", logger: logger)
            defer { store.close() }
            #expect(try store.views!.states()[name]?.lastEntityChangeId == checkpoint)
            let runner = ProjectionRunner(
                log: store.log, views: store.views!, projectors: [projector], batchSize: 2, logger: logger)
            try await runner.prepare()
            #expect(runner.checkpoints[name] == checkpoint)
            #expect(runner.lag == 0)
            _ = try await store.applier.applyRemote(script[2], from: .peer(instanceId: "peerInstance1"))
            #expect(runner.lag == 3)
            let pages = Mutex<[EntityChangeID]>([])
            try await runner.catchUp { last, _ in pages.withLock { $0.append(last) } }
            #expect(pages.withLock { $0 }.map(\.rawValue) == [checkpoint.rawValue + 2, checkpoint.rawValue + 3])
            #expect(runner.lag == 0)
            try await expectEntitiesAtTheirLatest(store.views!, name, after: script[...])
            live = try await digests(store.views!, projector)
            #expect(
                try await ViewVerifier.verify(
                    log: store.log, views: store.views!, projectors: [projector], scratchDirectory: dir
                ).isEmpty)
            try await runner.rebuild([name])
            #expect(try await digests(store.views!, projector) == live)
            #expect(runner.checkpoints[name] == store.log.head)
        }
    }

    @Test func triliumTablesHoldTriliumsRows() async throws {
        try await withStore { store, _ in
            for batch in scriptedChanges() {
                _ = try await store.applier.applyRemote(batch, from: .peer(instanceId: "peerInstance1"))
            }
            try await store.projections!.catchUp()
            try await store.views!.pool.read { db in
                let n1 = try #require(try Row.fetchOne(db, sql: "SELECT * FROM notes WHERE noteId = 'n1'"))
                #expect(n1["title"] == "First, edited")
                #expect(n1["type"] == "text")  // default when absent
                let n2 = try #require(try Row.fetchOne(db, sql: "SELECT * FROM notes WHERE noteId = 'n2'"))
                #expect(n2["extra"] == #"{"futureColumn":"kept"}"#)
                #expect(try Int.fetchAll(db, sql: "SELECT notePosition FROM branches ORDER BY branchId") == [7, 100])
                #expect(try String.fetchAll(db, sql: "SELECT name FROM attributes") == ["icon"])
                #expect(try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM revisions") == 0)
                let blob = try #require(try Row.fetchOne(db, sql: "SELECT content FROM blobs"))
                #expect(blob["content"] == "not base64 at all!")
                #expect(try Int.fetchOne(db, sql: "SELECT isSynced FROM options WHERE name = 'theme'") == 1)
            }
        }
    }

    @Test func entityChangesHoldsEachEntitysLatestChange() async throws {
        try await withStore { store, _ in
            for batch in scriptedChanges() {
                _ = try await store.applier.applyRemote(batch, from: .peer(instanceId: "peerInstance1"))
            }
            try await store.projections!.catchUp()
            try await store.views!.pool.read { db in
                #expect(try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM entity_changes") == 11)
                let a1 = try #require(try Row.fetchOne(db, sql: "SELECT * FROM entity_changes WHERE entityId = 'a1'"))
                #expect(a1["id"] == 15)
                #expect(a1["isErased"] == 0)
                #expect(a1["instanceId"] == "peerInstance1")
                let r1 = try #require(try Row.fetchOne(db, sql: "SELECT * FROM entity_changes WHERE entityId = 'r1'"))
                #expect(r1["isErased"] == 1)
                #expect(r1["utcDateChanged"] == date(23).description)
            }
        }
    }
}
