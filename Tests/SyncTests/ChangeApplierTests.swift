import EventLog
import Logging
import Sync
import Synchronization
import Testing
import Tributary
import TributaryCore
import TributaryTesting

let logger = Logger(label: "test")

/// A node's log and apply path in a temporary directory, with a settable clock.
final class Node: Sendable {
    let log: EntityChangeLog
    let applier: ChangeApplier
    let clock = ManualClock()

    init(_ dir: String) throws {
        log = try EntityChangeLog(directory: dir + "/log", logger: logger)
        let clock = self.clock
        applier = ChangeApplier(log: log, limits: ChangeLimits(maxEntityBytes: 8192)) { clock.now }
    }

    func close() { log.close() }
}

final class ManualClock: Sendable {
    private let value = Mutex(UTCDateTime("2025-01-01 00:00:00.000Z")!)
    var now: UTCDateTime {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }
}

func date(_ text: String) -> UTCDateTime { UTCDateTime(text)! }

/// A remote note change with a given date, hash and title.
func note(
    _ id: String, at when: String, hash: String = "hashAAAAAA", title: String = "t", instance: String = "remoteInst01",
    changeId: String = RandomID.make(), erased: Bool = false
) -> ChangeRecord {
    let change = EntityChange(
        entityName: .notes, entityId: id, hash: hash, isErased: erased, changeId: changeId, componentId: "NA",
        instanceId: instance, isSynced: true, utcDateChanged: date(when))
    let row: JSONObject = ["noteId": .string(id), "title": .string(title), "isProtected": .number(0)]
    return ChangeRecord(change: change, entity: erased ? nil : EntityRow(row))
}

func withNode(_ body: (Node) async throws -> Void) async throws {
    try await withTemporaryDirectory { dir in
        let node = try Node(dir)
        defer { node.close() }
        try await body(node)
    }
}

@Suite struct ConflictRuleTests {
    @Test func aNewerRemoteChangeWinsAndIsStampedWithItsSender() async throws {
        try await withNode { node in
            _ = try await node.applier.applyRemote(
                [note("n1", at: "2025-01-01 10:00:00.000Z")], from: .peer(instanceId: "peerAAAAAAAA"))
            let newer = note(
                "n1", at: "2025-01-01 10:00:01.000Z", hash: "hashBBBBBB", title: "new", instance: "authorInst01")
            let report = try await node.applier.applyRemote([newer], from: .peer(instanceId: "peerAAAAAAAA"))
            #expect(report.outcomes == [.applied(2)])
            let stored = try #require(try node.log.change(at: 2))
            #expect(stored.change.changeId == newer.change.changeId)
            #expect(stored.change.instanceId == "peerAAAAAAAA")
            #expect(stored.record.originInstanceId == "authorInst01")
            #expect(stored.entity == newer.entity)
            #expect(try node.log.current(EntityKey(.notes, "n1"))?.id == 2)
        }
    }

    @Test func importCountsEachRecordsOwnInstanceAsItsSender() async throws {
        try await withNode { node in
            let r = note("n1", at: "2025-01-01 10:00:00.000Z", instance: "ownInstance1")
            _ = try await node.applier.applyRemote([r], from: .recordInstance)
            let stored = try #require(try node.log.change(at: 1))
            #expect(stored.change.instanceId == "ownInstance1")
            #expect(stored.record.originInstanceId == "ownInstance1")
        }
    }

    @Test func aTieGoesToTheIncomingChange() async throws {
        try await withNode { node in
            _ = try await node.applier.applyRemote([note("n1", at: "2025-01-01 10:00:00.000Z")], from: .recordInstance)
            let tie = note("n1", at: "2025-01-01 10:00:00.000Z", hash: "hashTIETIE")
            #expect(try await node.applier.applyRemote([tie], from: .recordInstance).outcomes == [.applied(2)])
            #expect(try node.log.current(EntityKey(.notes, "n1"))?.hash == "hashTIETIE")
        }
    }

    @Test func aNewerLocalVersionWithTheSameHashMakesTheRemoteLoseQuietly() async throws {
        try await withNode { node in
            _ = try await node.applier.applyRemote([note("n1", at: "2025-01-01 10:00:05.000Z")], from: .recordInstance)
            let older = note("n1", at: "2025-01-01 10:00:00.000Z")
            let report = try await node.applier.applyRemote([older], from: .peer(instanceId: "peerAAAAAAAA"))
            #expect(report.outcomes == [.lostConflict(reissued: nil)])
            #expect(report.range == nil)
            #expect(node.log.head == 1)
        }
    }

    @Test func aNewerDifferentLocalVersionIsReissuedWithThisNodesInstance() async throws {
        try await withNode { node in
            let local = note(
                "n1", at: "2025-01-01 10:00:05.000Z", hash: "hashLOCAL1", title: "local", instance: "someoneElse1")
            _ = try await node.applier.applyRemote([local], from: .peer(instanceId: "peerAAAAAAAA"))
            let older = note("n1", at: "2025-01-01 10:00:00.000Z", hash: "hashREMOTE")
            let report = try await node.applier.applyRemote([older], from: .peer(instanceId: "peerAAAAAAAA"))
            #expect(report.outcomes == [.lostConflict(reissued: 2)])
            let reissued = try #require(try node.log.change(at: 2))
            #expect(reissued.change.instanceId == node.log.instanceId)
            #expect(reissued.record.originInstanceId == node.log.instanceId)
            #expect(reissued.change.changeId != local.change.changeId)
            #expect(reissued.change.changeId != older.change.changeId)
            #expect(reissued.change.hash == "hashLOCAL1")
            #expect(reissued.change.utcDateChanged == local.change.utcDateChanged)
            #expect(reissued.entity == local.entity)
            #expect(try node.log.current(EntityKey(.notes, "n1"))?.id == 2)
        }
    }

    @Test func aNewerErasureWins() async throws {
        try await withNode { node in
            _ = try await node.applier.applyRemote([note("n1", at: "2025-01-01 10:00:00.000Z")], from: .recordInstance)
            let erase = note("n1", at: "2025-01-01 11:00:00.000Z", erased: true)
            #expect(try await node.applier.applyRemote([erase], from: .recordInstance).outcomes == [.applied(2)])
            let current = try #require(try node.log.current(EntityKey(.notes, "n1")))
            #expect(current.isErased)
            #expect(try node.log.change(at: 2)?.entity == nil)
        }
    }

    @Test func anOlderErasureLosesToANewerLocalUpdateWhichIsReissued() async throws {
        try await withNode { node in
            _ = try await node.applier.applyRemote(
                [note("n1", at: "2025-01-01 12:00:00.000Z", hash: "hashAAAAAA")], from: .recordInstance)
            // Same hash (Trilium keeps the old hash on erasure), but the erased flag differs.
            let erase = note("n1", at: "2025-01-01 11:00:00.000Z", hash: "hashAAAAAA", erased: true)
            let report = try await node.applier.applyRemote([erase], from: .peer(instanceId: "peerAAAAAAAA"))
            #expect(report.outcomes == [.lostConflict(reissued: 2)])
            let current = try #require(try node.log.current(EntityKey(.notes, "n1")))
            #expect(!current.isErased)
            #expect(current.id == 2)
        }
    }

    @Test func theSameChangeIsStoredOnceEvenAfterReopening() async throws {
        try await withTemporaryDirectory { dir in
            let records = SampleEvents().records(200)
            do {
                let node = try Node(dir)
                let first = try await node.applier.applyRemote(records, from: .recordInstance)
                #expect(first.applied == 200)
                // Twice within one batch, and again in a later batch.
                let again = try await node.applier.applyRemote([records[5], records[5]], from: .recordInstance)
                #expect(again.outcomes == [.duplicate, .duplicate])
                node.close()
            }
            let node = try Node(dir)
            defer { node.close() }
            let replay = try await node.applier.applyRemote(records, from: .recordInstance)
            #expect(replay.duplicates == 200)
            #expect(replay.range == nil)
            #expect(node.log.head == 200)
            let dup = note("x1", at: "2025-01-01 00:00:00.000Z", changeId: "sameChangeId")
            let batch = try await node.applier.applyRemote([dup, dup], from: .recordInstance)
            #expect(batch.outcomes == [.applied(201), .duplicate])
        }
    }

    @Test func noteReorderingIsAppliedWithoutAConflictCheck() async throws {
        try await withNode { node in
            let change = EntityChange(
                entityName: .noteReordering, entityId: "parent1", hash: "N/A", changeId: RandomID.make(),
                instanceId: "remoteInst01", utcDateChanged: date("2020-01-01 00:00:00.000Z"))
            let positions = EntityRow(["b1": .number(10), "b2": .number(20)] as JSONObject)
            let newer = ChangeRecord(change: change, entity: positions)
            var older = newer
            older.change.changeId = RandomID.make()
            older.change.utcDateChanged = date("2019-01-01 00:00:00.000Z")
            let report = try await node.applier.applyRemote([newer, older], from: .recordInstance)
            #expect(report.outcomes == [.applied(1), .applied(2)])
        }
    }

    @Test func anOptionWithoutItsRowIsIgnored() async throws {
        try await withNode { node in
            let change = EntityChange(
                entityName: .options, entityId: "theme", hash: "hashOPTION", changeId: RandomID.make(),
                instanceId: "remoteInst01", isSynced: false, utcDateChanged: date("2020-01-01 00:00:00.000Z"))
            let report = try await node.applier.applyRemote(
                [ChangeRecord(change: change, entity: nil)], from: .recordInstance)
            #expect(report.outcomes == [.ignored])
            #expect(node.log.head == 0)
        }
    }

    @Test func racingBatchesForOneEntityAreDecidedInOrder() async throws {
        try await withNode { node in
            let versions = (0..<40).map { i in
                note(
                    "n1", at: "2025-01-01 10:00:\(String(format: "%02d", i)).000Z",
                    hash: "hash\(String(format: "%06d", i))")
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for v in versions.shuffled() {
                    group.addTask {
                        _ = try await node.applier.applyRemote([v], from: .peer(instanceId: "peerAAAAAAAA"))
                    }
                }
                try await group.waitForAll()
            }
            let current = try #require(try node.log.current(EntityKey(.notes, "n1")))
            #expect(current.hash == "hash000039")
            #expect(try node.log.verify().isSound)
        }
    }
}

/// Bad input refuses the whole batch with its own error, and writes nothing.
@Suite struct BadInputTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let name: String
        let code: CoreError.Code
        let field: String
        let make: @Sendable () -> ChangeRecord
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "entityId with a space", code: .invalidValue, field: "entityChange.entityId") {
            var r = note("ok1", at: "2025-01-01 00:00:00.000Z")
            r.change.entityId = "has space"
            return r
        },
        Case(name: "entityId too long", code: .invalidValue, field: "entityChange.entityId") {
            var r = note("ok1", at: "2025-01-01 00:00:00.000Z")
            r.change.entityId = String(repeating: "a", count: 129)
            return r
        },
        Case(name: "changeId with punctuation", code: .invalidValue, field: "entityChange.changeId") {
            note("ok1", at: "2025-01-01 00:00:00.000Z", changeId: "bad-change")
        },
        Case(name: "empty instanceId", code: .invalidValue, field: "entityChange.instanceId") {
            note("ok1", at: "2025-01-01 00:00:00.000Z", instance: "")
        },
        Case(name: "empty hash", code: .invalidValue, field: "entityChange.hash") {
            note("ok1", at: "2025-01-01 00:00:00.000Z", hash: "")
        },
        Case(name: "an erasure carrying a row", code: .invalidValue, field: "entity") {
            var r = note("ok1", at: "2025-01-01 00:00:00.000Z")
            r.change.isErased = true
            return r
        },
        Case(name: "an update without its row", code: .missingField, field: "entity") {
            var r = note("ok1", at: "2025-01-01 00:00:00.000Z")
            r.entity = nil
            return r
        },
        Case(name: "primary key does not match", code: .invalidValue, field: "entity.noteId") {
            var r = note("ok1", at: "2025-01-01 00:00:00.000Z")
            r.entity = EntityRow(["noteId": .string("other")] as JSONObject)
            return r
        },
        Case(name: "primary key of the wrong type", code: .wrongType, field: "entity.noteId") {
            var r = note("ok1", at: "2025-01-01 00:00:00.000Z")
            r.entity = EntityRow(["noteId": .number(5)] as JSONObject)
            return r
        },
        Case(name: "an oversized row", code: .tooLarge, field: "entity") {
            note("ok1", at: "2025-01-01 00:00:00.000Z", title: String(repeating: "x", count: 9000))
        },
        Case(name: "a reordering position that is not an integer", code: .wrongType, field: "entity.b1") {
            let change = EntityChange(
                entityName: .noteReordering, entityId: "p1", hash: "N/A", changeId: RandomID.make(),
                instanceId: "remoteInst01", utcDateChanged: date("2020-01-01 00:00:00.000Z"))
            return ChangeRecord(change: change, entity: EntityRow(["b1": .string("ten")] as JSONObject))
        },
    ]

    @Test(arguments: cases) func refusedWholeWithItsOwnError(_ c: Case) async throws {
        try await withNode { node in
            _ = try await node.applier.applyRemote(
                [note("before", at: "2025-01-01 00:00:00.000Z")], from: .recordInstance)
            let batch = [
                note("good1", at: "2025-01-01 00:00:00.000Z"), c.make(), note("good2", at: "2025-01-01 00:00:00.000Z"),
            ]
            await #expect {
                _ = try await node.applier.applyRemote(batch, from: .recordInstance)
            } throws: { error in
                guard let error = error as? ApplyError else { return false }
                return error.index == 1 && error.code == c.code && error.field == c.field
            }
            #expect(node.log.head == 1)
            #expect(try node.log.current(EntityKey(.notes, "good1")) == nil)
        }
    }

    /// Large batches are checked in two halves at once; the error is still the first bad record's.
    @Test(arguments: [[100, 800], [700, 900], [999]])
    func aLargeBatchNamesItsFirstBadRecord(_ bad: [Int]) async throws {
        try await withNode { node in
            var batch = (0..<1000).map { note("n\($0)", at: "2025-01-01 00:00:00.000Z") }
            for i in bad { batch[i].change.hash = "" }
            await #expect {
                _ = try await node.applier.applyRemote(batch, from: .recordInstance)
            } throws: { ($0 as? ApplyError)?.index == bad[0] && ($0 as? ApplyError)?.field == "entityChange.hash" }
            #expect(node.log.head == 0)
        }
    }
}

@Suite struct LocalWriteTests {
    @Test func aLocalWriteGetsTriliumsHashAFreshChangeIdAndThisNodesInstance() async throws {
        try await withNode { node in
            node.clock.now = date("2025-03-04 05:06:07.089Z")
            let row: JSONObject = [
                "title": .string("Café"), "isProtected": .number(0), "type": .string("text"),
                "mime": .string("text/html"),
                "blobId": .string("blob0000000000000001"),
            ]
            let report = try await node.applier.applyLocal([
                LocalWrite(entityName: .notes, entityId: "note00000001", entity: EntityRow(row))
            ])
            #expect(report.outcomes == [.applied(1)])
            let stored = try #require(try node.log.change(at: 1))
            var expectedRow = row
            expectedRow["noteId"] = .string("note00000001")
            #expect(stored.change.hash == (try ContentHash.entityHash(.notes, row: expectedRow)))
            #expect(stored.change.instanceId == node.log.instanceId)
            #expect(RandomID.isAlphanumeric(stored.change.changeId) && stored.change.changeId.count == 12)
            #expect(stored.change.utcDateChanged == date("2025-03-04 05:06:07.089Z"))
            #expect(try stored.entity?.object()["noteId"] == .string("note00000001"))
        }
    }

    @Test func aLocalWriteIsNeverOlderThanTheVersionItReplaces() async throws {
        try await withNode { node in
            // A peer whose clock runs ahead wrote the current version.
            _ = try await node.applier.applyRemote([note("n1", at: "2030-01-01 00:00:00.000Z")], from: .recordInstance)
            node.clock.now = date("2025-01-01 00:00:00.000Z")
            _ = try await node.applier.applyLocal([
                LocalWrite(entityName: .notes, entityId: "n1", entity: EntityRow(["title": .string("mine")]))
            ])
            #expect(try node.log.current(EntityKey(.notes, "n1"))?.utcDateChanged == date("2030-01-01 00:00:00.001Z"))
        }
    }

    @Test func aLocalErasureKeepsTheOldHash() async throws {
        try await withNode { node in
            _ = try await node.applier.applyRemote(
                [note("n1", at: "2025-01-01 00:00:00.000Z", hash: "hashKEEPME")], from: .recordInstance)
            let report = try await node.applier.applyLocal([
                LocalWrite(entityName: .notes, entityId: "n1", entity: nil),
                LocalWrite(entityName: .notes, entityId: "neverSeen1", entity: nil),
            ])
            #expect(report.outcomes == [.applied(2), .ignored])
            let erasure = try #require(try node.log.change(at: 2))
            #expect(erasure.change.isErased)
            #expect(erasure.change.hash == "hashKEEPME")
            #expect(erasure.entity == nil)
            // The erasure is this node's own change, not the remote one's stamp carried over.
            let erased = try #require(try node.log.change(at: 1))
            #expect(erased.change.instanceId == "remoteInst01")
            #expect(erasure.change.instanceId == node.log.instanceId)
            #expect(erasure.record.originInstanceId == node.log.instanceId)
            #expect(erasure.change.changeId != erased.change.changeId)
        }
    }

    @Test func aLocalWriteWhosePrimaryKeyDisagreesIsRefused() async throws {
        try await withNode { node in
            await #expect {
                _ = try await node.applier.applyLocal([
                    LocalWrite(entityName: .notes, entityId: "n1", entity: EntityRow(["title": .string("ok")])),
                    LocalWrite(entityName: .notes, entityId: "n2", entity: EntityRow(["noteId": .string("n3")])),
                ])
            } throws: { ($0 as? ApplyError)?.index == 1 && ($0 as? ApplyError)?.field == "entity.noteId" }
            #expect(node.log.head == 0)
        }
    }
    /// A row that spells its column names with escapes (`\u006e` is `n`) means what JSON.parse,
    /// and so Trilium, reads: the same note, the same hash as the plain spelling.
    @Test func aRowWithEscapedNamesHashesAndChecksAsJSONParseReadsIt() async throws {
        try await withNode { node in
            let escaped = try EntityRow(validating: Array(#"{"\u006eoteId":"n1","t\u0069tle":"x","type":"text"}"#.utf8))
            let plain = EntityRow(["noteId": .string("n1"), "title": .string("x"), "type": .string("text")])
            _ = try await node.applier.applyLocal([LocalWrite(entityName: .notes, entityId: "n1", entity: escaped)])
            let first = try #require(try node.log.change(at: 1))
            #expect(first.change.hash == (try ContentHash.entityHash(.notes, row: try plain.object())))
            #expect(try first.entity?.object()["noteId"] == .string("n1"))
            await #expect {
                _ = try await node.applier.applyLocal([
                    LocalWrite(
                        entityName: .notes, entityId: "n9",
                        entity: try EntityRow(validating: Array(#"{"\u006eoteId":"n1"}"#.utf8)))
                ])
            } throws: { ($0 as? ApplyError)?.field == "entity.noteId" }
        }
    }
}
