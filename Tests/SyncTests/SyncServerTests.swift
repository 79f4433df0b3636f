import EventLog
import Sync
import Synchronization
import Testing
import TributaryCore
import TributaryTesting

/// A remote change of any entity, with its row (nil: an erasure).
private func change(_ name: EntityName, _ id: String, _ row: JSONObject?, hash: String = "hashAAAAAA") -> ChangeRecord {
    let change = EntityChange(
        entityName: name, entityId: id, hash: hash, isErased: row == nil, changeId: RandomID.make(), componentId: "NA",
        instanceId: "remoteInst01", isSynced: true, utcDateChanged: date("2025-01-01 00:00:00.000Z"))
    return ChangeRecord(change: change, entity: row.map(EntityRow.init))
}

@Suite(.timeLimit(.minutes(3))) struct SyncServerTests {
    @Test func aPullStopsAtThePublishedHead() async throws {
        // A commit's records are in the log a moment before its index entries reach the lookups.
        // A pull made in that moment used to see the entity's previous change as current, take
        // the new change for superseded, skip it and move the cursor past it: lost for that peer.
        try await withNode { node in
            let server = SyncServer(log: node.log, applier: node.applier)
            _ = try await node.applier.applyRemote(
                [note("noteAAAAAAAA", at: "2025-01-01 00:00:00.000Z")], from: .recordInstance)
            let pulled = Mutex<Result<SyncServer.PullPage, any Error>?>(nil)
            node.log.runBetweenCommitAndPublish {
                pulled.withLock { page in
                    guard page == nil else { return }
                    page = Result { try server.changed(after: .zero, excludingInstance: nil) }
                }
            }
            _ = try await node.applier.applyRemote(
                [note("noteAAAAAAAA", at: "2025-01-02 00:00:00.000Z", title: "newer")], from: .recordInstance)
            node.log.runBetweenCommitAndPublish(nil)

            let during = try #require(try pulled.withLock { $0 }?.get())
            #expect(during.changes.map(\.id) == [1])
            #expect(during.lastEntityChangeId == 1, "the cursor moved past a change it did not ship")
            let after = try server.changed(after: during.lastEntityChangeId, excludingInstance: nil)
            #expect(after.changes.map(\.id) == [2])
            #expect(after.changes.first?.entity?.value(forKey: "title") == .string("newer"))
        }
    }

    @Test func aLargeSectorIsReissuedInSeveralCommits() async throws {
        try await withNode { node in
            let server = SyncServer(log: node.log, applier: node.applier)
            let records = (0..<2500).map { i in
                note("a\(String(i, radix: 36))", at: "2025-01-01 00:00:00.000Z")
            }
            _ = try await node.applier.applyRemote(records, from: .recordInstance)
            // The writer queue counts a commit just after acknowledging it: let it settle.
            try await node.log.flushIndex()
            let commits = node.log.commitCount
            #expect(try await server.queueSector(.notes, sector: "a") == 2500)
            try await node.log.flushIndex()
            #expect(node.log.commitCount - commits == 3)
            #expect(node.log.head == 5000)
        }
    }

    @Test func blobsNothingPointsAtAreLeftOutOfTheDigests() async throws {
        // Trilium deletes unreferenced blobs, with their entity_changes rows, before it hashes; a
        // node that counted them would differ from a Trilium peer at every check.
        func blob(_ id: String) -> ChangeRecord {
            change(.blobs, id, ["blobId": .string(id), "content": .string("aGk=")], hash: "blob\(id)")
        }
        func note(_ id: String, blob: String, deleted: Bool = false) -> ChangeRecord {
            change(
                .notes, id, ["noteId": .string(id), "blobId": .string(blob), "isDeleted": .number(deleted ? 1 : 0)],
                hash: "note\(id)")
        }
        let shared = [
            blob("bLive1"), note("nLive1", blob: "bLive1"),
            // A soft-deleted note still holds its blob.
            blob("bKept2"), note("nSoft2", blob: "bKept2", deleted: true),
            // A revision and an attachment hold theirs.
            blob("bRev3"), change(.revisions, "rRev3", ["revisionId": .string("rRev3"), "blobId": .string("bRev3")]),
            blob("bAtt4"),
            change(.attachments, "aAtt4", ["attachmentId": .string("aAtt4"), "blobId": .string("bAtt4")]),
            // An erased blob's tombstone stays in Trilium's entity_changes.
            blob("bGone5"), change(.blobs, "bGone5", nil, hash: "blobbGone5"),
            // The note that held this blob was erased.
            note("nErased6", blob: "bErased6"), change(.notes, "nErased6", nil, hash: "notenErased6"),
        ]
        let orphans = [blob("bOrphan7"), blob("bErased6"), blob("xOrphan8")]
        try await withTemporaryDirectory { dir in
            let withOrphans = try Node(dir + "/a")
            defer { withOrphans.close() }
            let without = try Node(dir + "/b")
            defer { without.close() }
            _ = try await withOrphans.applier.applyRemote(shared + orphans, from: .recordInstance)
            _ = try await without.applier.applyRemote(shared, from: .recordInstance)
            let a = SyncServer(log: withOrphans.log, applier: withOrphans.applier)
            let b = SyncServer(log: without.log, applier: without.applier)
            let digests = try await a.entityHashes()
            #expect(digests == (try await b.entityHashes()))
            #expect(digests[.blobs]?.keys.sorted() == ["b"], "the x sector holds only an orphan")

            // Re-queueing the sector re-issues the live blobs, the tombstone and what points at
            // blobs of the sector, and no orphan.
            let head = withOrphans.log.head
            let requeued = try await a.queueSector(.blobs, sector: "b")
            let issued = try withOrphans.log.changes(after: head, limit: 100).map(\.change.entityId).sorted()
            #expect(requeued == issued.count)
            #expect(issued == ["aAtt4", "bAtt4", "bGone5", "bKept2", "bLive1", "bRev3", "nLive1", "nSoft2", "rRev3"])
        }
    }
}
