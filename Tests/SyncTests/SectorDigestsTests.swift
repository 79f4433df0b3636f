import EventLog
import Sync
import Testing
import Tributary
import TributaryCore
import TributaryTesting

/// The content-hash check's digests kept between checks must equal the digests computed whole,
/// whatever changed in between — blob references that come and go above all.
@Suite(.timeLimit(.minutes(3))) struct SectorDigestsTests {
    /// Random changes of a small set of entities (few ids per sector, so sectors are shared and
    /// emptied): blobs, notes, revisions and attachments pointing at them and moving between them,
    /// soft deletions, erasures, non-synced options, note_reordering.
    struct Workload {
        var rng: SplitMix64
        var millis: Int64 = 1_735_689_600_000

        static let blobIds = ["bA1", "bA2", "bB1", "cC1", "cC2", "dD1"]
        static let noteIds = ["nA1", "nA2", "nB1", "oC1"]

        mutating func pick<T>(_ items: [T]) -> T { items[Int(rng.next() % UInt64(items.count))] }

        mutating func change(
            _ name: EntityName, _ id: String, _ row: JSONObject?, isSynced: Bool = true
        ) -> ChangeRecord {
            millis += 1
            let change = EntityChange(
                entityName: name, entityId: id, hash: RandomID.make(length: 10), isErased: row == nil,
                changeId: RandomID.make(), componentId: "NA", instanceId: "remoteInst01", isSynced: isSynced,
                utcDateChanged: UTCDateTime(millisecondsSinceEpoch: millis))
            return ChangeRecord(change: change, entity: row.map(EntityRow.init))
        }

        mutating func next() -> ChangeRecord {
            switch rng.next() % 10 {
            case 0, 1:
                let id = pick(Self.blobIds)
                return change(.blobs, id, rng.next() % 5 == 0 ? nil : ["blobId": .string(id), "content": .string("x")])
            case 2, 3, 4:
                let id = pick(Self.noteIds)
                if rng.next() % 6 == 0 { return change(.notes, id, nil) }
                let deleted = rng.next() % 4 == 0
                return change(
                    .notes, id,
                    [
                        "noteId": .string(id), "blobId": .string(pick(Self.blobIds)),
                        "isDeleted": .number(deleted ? 1 : 0),
                    ])
            case 5:
                let id = pick(["rA1", "rB1"])
                return change(.revisions, id, ["revisionId": .string(id), "blobId": .string(pick(Self.blobIds))])
            case 6:
                let id = pick(["aA1", "aC1"])
                if rng.next() % 4 == 0 { return change(.attachments, id, nil) }
                return change(.attachments, id, ["attachmentId": .string(id), "blobId": .string(pick(Self.blobIds))])
            case 7:
                let name = pick(["theme", "syncServerHost", "title"])
                return change(
                    .options, name, ["name": .string(name), "value": .string("v")], isSynced: rng.next() % 2 == 0)
            case 8:
                let id = pick(["brA1", "brB1", "xx1"])
                return change(.branches, id, ["branchId": .string(id), "noteId": .string(pick(Self.noteIds))])
            default:
                return change(.noteReordering, pick(Self.noteIds), ["brA1": .number(10)])
            }
        }
    }

    @Test func keptDigestsEqualDigestsComputedWholeAfterEveryChange() async throws {
        try await withNode { node in
            let kept = SectorDigests()
            let server = SyncServer(log: node.log, applier: node.applier, digests: kept)
            var workload = Workload(rng: SplitMix64(seed: 91))
            for step in 0..<60 {
                let batch = (0..<(1 + Int(workload.rng.next() % 4))).map { _ in workload.next() }
                _ = try await node.applier.applyRemote(batch, from: .recordInstance)
                let whole = try await SyncServer(log: node.log, applier: node.applier).entityHashes()
                let updated = try await server.entityHashes()
                #expect(updated == whole, "step \(step): \(batch.map { "\($0.change.key)" })")
                // The index batches move entries from the overlay to disk: the sector reads must
                // find them in either.
                if step % 7 == 3 { try await node.log.flushIndex() }
            }
            #expect(kept.wholeComputations == 1, "the kept digests were computed whole again")
        }
    }

    /// Past `maxIncrementalChanges` changes since the last check, everything is read again.
    @Test func manyChangesSinceTheLastCheckAreReadWhole() async throws {
        try await withNode { node in
            let kept = SectorDigests(maxIncrementalChanges: 10)
            let server = SyncServer(log: node.log, applier: node.applier, digests: kept)
            var workload = Workload(rng: SplitMix64(seed: 92))
            _ = try await node.applier.applyRemote((0..<5).map { _ in workload.next() }, from: .recordInstance)
            _ = try await server.entityHashes()
            _ = try await node.applier.applyRemote((0..<5).map { _ in workload.next() }, from: .recordInstance)
            _ = try await server.entityHashes()
            #expect(kept.wholeComputations == 1)
            _ = try await node.applier.applyRemote((0..<11).map { _ in workload.next() }, from: .recordInstance)
            let updated = try await server.entityHashes()
            #expect(kept.wholeComputations == 2)
            #expect(updated == (try await SyncServer(log: node.log, applier: node.applier).entityHashes()))
        }
    }
}
