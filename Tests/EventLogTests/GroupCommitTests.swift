import Dispatch
import EventLog
import Synchronization
import Testing
import Tributary
import TributaryCore
import TributaryTesting

/// A write's appends inside a group commit: the writer sees them at once, every other reader
/// only once the commit is durable, and a write that fails leaves nothing behind.
@Suite(.timeLimit(.minutes(2))) struct GroupCommitTests {
    /// A later version of `old` (a new changeId, a minute later, another hash).
    func newer(_ old: ChangeRecord, _ n: Int) -> ChangeRecord {
        var record = old
        record.change.changeId = RandomID.make()
        record.change.hash = "hashNEW\(n)"
        record.change.utcDateChanged = UTCDateTime(
            millisecondsSinceEpoch: old.change.utcDateChanged.millisecondsSinceEpoch + 60_000 * Int64(n))
        return record
    }

    struct Refused: Error {}

    /// What a reader on another thread saw while the write was held open inside its body.
    struct Seen: Sendable {
        var onDisk: CurrentEntry?
        var inOverlay: CurrentEntry?
        var fresh: CurrentEntry?
        var newChangeIds: [EntityChangeID?]
        var counts: [EntityName: (live: Int, erased: Int)]
        var overlayCount: Int
    }

    @Test func aRunningWriteIsInvisibleToReadersAndLeavesNothingWhenItThrows() async throws {
        try await withTemporaryDirectory { dir in
            let log = try openLog(dir) { $0.indexIdleDelay = .seconds(3600) }
            defer { log.close() }
            let records = SampleEvents(seed: 11).records(40)
            _ = try await log.append(Array(records[..<20]))
            try await log.flushIndex()
            _ = try await log.append(Array(records[20...]))
            #expect(log.indexStatus.checkpoint == 20)
            #expect(log.indexStatus.overlayCount == 20)
            let countsBefore = try log.entityCounts()

            let onDisk = records[0]
            let inOverlay = records[20]
            let fresh = SampleEvents(seed: 12).records(1)[0]
            // The entity in the overlay gets two versions in the write: the undo must go back
            // through both to the committed one.
            let written = [newer(onDisk, 1), newer(inOverlay, 1), newer(inOverlay, 2), fresh]

            let appended = DispatchSemaphore(value: 0)
            let checked = DispatchSemaphore(value: 0)
            let writerSaw = Mutex<[CurrentEntry?]>([])
            let write = Task {
                try await log.write { writer in
                    for record in written { writer.append(record) }
                    let seen = try [onDisk, inOverlay, fresh].map { try writer.current($0.change.key) }
                    writerSaw.withLock { $0 = seen }
                    appended.signal()
                    checked.wait()
                    throw Refused()
                }
            }
            let seen = try await onOwnThread {
                appended.wait()
                defer { checked.signal() }
                return Seen(
                    onDisk: try log.current(onDisk.change.key), inOverlay: try log.current(inOverlay.change.key),
                    fresh: try log.current(fresh.change.key),
                    newChangeIds: try written.map { try log.entityChangeID(forChangeId: $0.change.changeId) },
                    counts: try log.entityCounts(), overlayCount: log.indexStatus.overlayCount)
            }
            await #expect(throws: Refused.self) { try await write.value }

            // The writer saw its own appends: ids 41-44, the overlay entity at its second version.
            #expect(writerSaw.withLock { $0 }.map { $0?.id } == [41, 43, 44])
            #expect(writerSaw.withLock { $0 }.map { $0?.hash } == ["hashNEW1", "hashNEW2", fresh.change.hash])
            // Readers saw the committed state only.
            #expect(seen.onDisk?.id == 1)
            #expect(seen.inOverlay?.id == 21)
            #expect(seen.inOverlay?.hash == inOverlay.change.hash)
            #expect(seen.fresh == nil)
            #expect(seen.newChangeIds.allSatisfy { $0 == nil })
            #expect(seen.overlayCount == 20)
            #expect(seen.counts.mapValues { [$0.live, $0.erased] } == countsBefore.mapValues { [$0.live, $0.erased] })

            // Nothing of the failed write is left: not for readers, not for the next writer.
            #expect(log.head == 40)
            #expect(log.indexStatus.overlayCount == 20)
            #expect(try log.current(inOverlay.change.key)?.id == 21)
            #expect(try log.current(fresh.change.key) == nil)
            let again = try await log.write { writer in
                let before = try written.map { try writer.contains(changeId: $0.change.changeId) }
                let current = try writer.current(inOverlay.change.key)?.id
                for record in written { writer.append(record) }
                return before + [current == 21]
            }
            #expect(again.value == [false, false, false, false, true])
            #expect(again.range == 41...44)
            #expect(try log.current(inOverlay.change.key)?.id == 43)
            #expect(try log.current(fresh.change.key)?.id == 44)
            #expect(try log.entityChangeID(forChangeId: written[0].change.changeId) == 41)
            try await log.flushIndex()
            #expect(try log.current(onDisk.change.key)?.hash == "hashNEW1")
            #expect(try log.verify().isSound)
        }
    }

    /// A commit that fails on a full map is undone and its writes run again in a bigger one. A
    /// write that dedupes by changeId (as the apply path does) must not find its own first run's
    /// appends then, or it would skip them all.
    @Test func aGroupRetriedAfterTheMapGrowsAppendsEverything() async throws {
        try await withTemporaryDirectory { dir in
            let log = try openLog(dir) {
                $0.initialMapSize = 1 << 20; $0.indexIdleDelay = .seconds(3600)
            }
            defer { log.close() }
            let records = SampleEvents(seed: 13).records(3000)  // ~2.5 MB: the 1 MB map fills
            let runs = Mutex(0)
            let committed = try await log.write { writer in
                runs.withLock { $0 += 1 }
                var skipped = 0
                for record in records {
                    if try writer.contains(changeId: record.change.changeId) {
                        skipped += 1
                    } else {
                        writer.append(record)
                    }
                }
                return skipped
            }
            #expect(runs.withLock { $0 } > 1, "the map never filled: the test proves nothing")
            #expect(committed.value == 0)
            #expect(committed.range == 1...3000)
            #expect(log.indexStatus.overlayCount == 3000)
            #expect(try log.entityChangeID(forChangeId: records[2999].change.changeId) == 3000)
            try await log.flushIndex()
            #expect(try log.verify().isSound)
        }
    }
}
