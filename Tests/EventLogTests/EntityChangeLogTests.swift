import Foundation
import Logging
import Synchronization
import Testing
import Tributary
import TributaryCore
import TributaryTesting

@testable import EventLog

let logger = Logger(label: "test")

func openLog(_ dir: String, _ configure: (inout EntityChangeLog.Configuration) -> Void = { _ in }) throws
    -> EntityChangeLog
{
    var configuration = EntityChangeLog.Configuration()
    configure(&configuration)
    return try EntityChangeLog(directory: dir + "/log", configuration: configuration, logger: logger)
}

@Suite struct EntityChangeLogTests {
    @Test func appendThenReadBackInIdOrder() async throws {
        try await withTemporaryDirectory { dir in
            let log = try openLog(dir)
            defer { log.close() }
            let records = SampleEvents().records(2500)
            let first = try await log.append(Array(records[..<1000]))
            let second = try await log.append(Array(records[1000...]))
            #expect(first == 1...1000)
            #expect(second == 1001...2500)
            #expect(log.head == 2500)
            var all: [LoggedChange] = []
            var cursor = EntityChangeID.zero
            while true {
                let page = try log.changes(after: cursor, limit: 700)
                guard let last = page.last else { break }
                all += page
                cursor = last.id
            }
            #expect(all.map(\.id.rawValue) == Array(1...2500))
            #expect(all.map(\.record) == records)
            #expect(try log.change(at: 1234)?.record == records[1233])
            #expect(try log.change(at: 2501) == nil)
        }
    }

    @Test func dataAndIdentitySurviveReopen() async throws {
        try await withTemporaryDirectory { dir in
            let records = SampleEvents().records(300)
            let instanceId: String
            do {
                let log = try openLog(dir)
                instanceId = log.instanceId
                _ = try await log.append(records)
                log.close()
            }
            let log = try openLog(dir)
            defer { log.close() }
            #expect(log.instanceId == instanceId)
            #expect(RandomID.isAlphanumeric(instanceId) && instanceId.count == 12)
            #expect(log.head == 300)
            #expect(try log.changes(after: 299, limit: 10).map(\.record) == [records[299]])
            #expect(try await log.append([SampleEvents(seed: 7).records(1)[0]]) == 301...301)
        }
    }

    /// A damaged `current` entry is an error naming the entity, never a missing entry (the
    /// conflict rule would take the entity for a new one), and verify reports it.
    @Test func aDamagedIndexEntryIsAnErrorNotAnAbsence() async throws {
        try await withTemporaryDirectory { dir in
            var records = SampleEvents().records(50)
            let target = try #require(records.firstIndex { !$0.change.isErased })
            // A hash found nowhere else in the file marks the entity's record and index entry.
            let marker = "IDXMARK7q3"
            records[target].change.hash = marker
            let key = records[target].change.key
            do {
                let log = try openLog(dir)
                _ = try await log.append(records)
                try await log.flushIndex()
                log.close()
            }
            try damageIndexEntry(in: dir + "/log", hashMarker: marker)

            do {
                let log = try openLog(dir)
                defer { log.close() }
                let error = try #require(throws: EventLogError.self) { try log.current(key) }
                #expect(error.code == .corruptIndex)
                #expect(error.message.contains("\(key)"), "\(error)")
                #expect(throws: EventLogError.self) { try log.forEachCurrent { _, _ in } }
                let other = records[(target + 1) % records.count].change
                #expect(try log.current(other.key)?.hash == other.hash)
                let report = try log.verify()
                #expect(!report.isSound)
                #expect(report.problems.map(\.message) == ["current's entry for \(key) cannot be decoded"])
            }

            // The remedy (`tributary reindex`): the indexes rebuilt from the records.
            let log = try openLog(dir) { $0.rebuildIndexes = true }
            defer { log.close() }
            try await log.flushIndex()
            #expect(try log.current(key)?.hash == marker)
            #expect(try log.verify().isSound)
            #expect(log.indexStatus.checkpoint == 50)
        }
    }

    /// A truncated `data.mdb` (an interrupted copy, a disk that filled during a restore) is
    /// refused at open with a clear error, for writing and for reading; LMDB alone would map it
    /// and die of SIGBUS at the first page past its end.
    @Test func aTruncatedLogFileIsRefusedAtOpen() async throws {
        try await withTemporaryDirectory { dir in
            do {
                let log = try openLog(dir)
                _ = try await log.append(SampleEvents().records(3000))
                try await log.flushIndex()
                log.close()
            }
            let path = dir + "/log/data.mdb"
            let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
            #expect(truncate(path, off_t(size / 2)) == 0)
            for readOnly in [false, true] {
                let error = try #require(throws: EventLogError.self) {
                    try openLog(dir) { $0.readOnly = readOnly }
                }
                #expect(error.message.contains("the file is truncated"), "\(error)")
                #expect(error.message.contains("restore the data directory from a backup"), "\(error)")
            }
        }
    }

    /// A directory whose LMDB file is not a log (none of the log's databases) is refused with a
    /// clear error when opened for reading. Such a failed open used to close the environment twice
    /// (its deinit ran after the throw), a double free that crashed `tributary status`.
    @Test func anLMDBFileWithoutTheLogsDatabasesIsRefusedForReading() async throws {
        try await withTemporaryDirectory { dir in
            try FileManager.default.createDirectory(atPath: dir + "/log", withIntermediateDirectories: true)
            let foreign = try Environment(
                path: dir + "/log", options: Environment.Options(mapSize: 1 << 20), databases: [])
            foreign.close()
            for _ in 0..<3 {
                let error = try #require(throws: EventLogError.self) {
                    try openLog(dir) { $0.readOnly = true }
                }
                #expect(error.message.contains("not a Tributary log"), "\(error)")
            }
        }
    }

    /// Opening such a file for writing (`serve` or `import` pointed at the wrong directory) is
    /// refused too, and writes nothing into it: the log's databases are not added.
    @Test func anLMDBFileOfAnotherProgramIsRefusedForWritingAndLeftAlone() async throws {
        try await withTemporaryDirectory { dir in
            try FileManager.default.createDirectory(atPath: dir + "/log", withIntermediateDirectories: true)
            let options = Environment.Options(mapSize: 1 << 20)
            try Environment(path: dir + "/log", options: options, databases: ["accounts"]).close()
            let error = try #require(throws: EventLogError.self) { try openLog(dir) }
            #expect(error.message.contains("'accounts', which is not one of the log's databases"), "\(error)")
            #expect(error.message.contains("nothing was written"), "\(error)")
            var readOnly = options
            readOnly.readOnly = true
            #expect(throws: LMDBError.self) {
                try Environment(path: dir + "/log", options: readOnly, databases: ["changes"])
            }
            try Environment(path: dir + "/log", options: readOnly, databases: ["accounts"]).close()
        }
    }

    /// Lookups are exact whether an entry is in the overlay, on disk, or rebuilt after reopening
    /// without indexing (what a crash between append and index batch leaves).
    @Test func lookupsStayExactWhileTheIndexerLags() async throws {
        try await withTemporaryDirectory { dir in
            let records = SampleEvents().records(3000)
            do {
                let log = try openLog(dir) { $0.indexIdleDelay = .seconds(3600) }
                _ = try await log.append(records)
                #expect(log.indexStatus.overlayCount == 3000)
                #expect(log.indexStatus.checkpoint == .zero)
                try expectLookupsExact(log, records)
                log.close()  // no index batch ran: the on-disk indexes are empty
            }
            do {
                let log = try openLog(dir) {
                    $0.indexIdleDelay = .seconds(3600); $0.indexBatchSize = 1000
                }
                #expect(log.indexStatus.overlayCount == 3000)
                try expectLookupsExact(log, records)
                try await log.flushIndex()
                #expect(log.indexStatus.checkpoint == 3000)
                #expect(log.indexStatus.overlayCount == 0)
                try expectLookupsExact(log, records)
                log.close()
            }
            let log = try openLog(dir)
            defer { log.close() }
            #expect(log.indexStatus.overlayCount == 0)
            try expectLookupsExact(log, records)
        }
    }

    /// An entity whose older version is in the on-disk index and whose newer one is only in the
    /// overlay reads as the newer one, in the overlay and again after a reopen that rebuilt the
    /// overlay from the log; both versions' changeIds still find their ids.
    @Test func aNewerVersionInTheOverlayWinsOverTheOlderOneOnDisk() async throws {
        try await withTemporaryDirectory { dir in
            let records = SampleEvents(seed: 5).records(100)
            // New versions of the first 20 entities (the last one an erasure), later and re-hashed.
            let newer = records[..<20].enumerated().map { i, old in
                var record = old
                record.change.changeId = RandomID.make()
                record.change.hash = "hashNEW\(100 + i)"
                record.change.utcDateChanged = UTCDateTime(
                    millisecondsSinceEpoch: old.change.utcDateChanged.millisecondsSinceEpoch + 60_000)
                if i == 19 {
                    record.change.isErased = true
                    record.entity = nil
                }
                return record
            }
            func expectNewerWins(_ log: EntityChangeLog, _ when: String) throws {
                for (i, (old, new)) in zip(records, newer).enumerated() {
                    let entry = try #require(try log.current(new.change.key), "\(when)")
                    #expect(entry.id == EntityChangeID(UInt64(101 + i)), "\(when)")
                    #expect(entry.hash == new.change.hash, "\(when)")
                    #expect(entry.isErased == new.change.isErased, "\(when)")
                    #expect(entry.utcDateChanged == new.change.utcDateChanged, "\(when)")
                    #expect(try log.entityChangeID(forChangeId: old.change.changeId) == EntityChangeID(UInt64(i + 1)))
                    #expect(try log.entityChangeID(forChangeId: new.change.changeId) == EntityChangeID(UInt64(101 + i)))
                }
                for (i, r) in records.enumerated().dropFirst(20) {
                    #expect(try log.current(r.change.key)?.id == EntityChangeID(UInt64(i + 1)), "\(when)")
                }
            }
            do {
                let log = try openLog(dir) { $0.indexIdleDelay = .seconds(3600) }
                _ = try await log.append(records)
                try await log.flushIndex()
                #expect(try await log.append(newer) == 101...120)
                #expect(log.indexStatus.checkpoint == 100)
                #expect(log.indexStatus.overlayCount == 20)
                try expectNewerWins(log, "in the overlay")
                log.close()  // before any index batch takes the newer versions to disk
            }
            let log = try openLog(dir) { $0.indexIdleDelay = .seconds(3600) }
            defer { log.close() }
            #expect(log.indexStatus.checkpoint == 100)
            #expect(log.indexStatus.overlayCount == 20)
            try expectNewerWins(log, "after reopening")
            try await log.flushIndex()
            #expect(log.indexStatus.overlayCount == 0)
            try expectNewerWins(log, "on disk")
            #expect(try log.verify().isSound)
        }
    }

    /// Every flag of a `current` entry survives the move from the overlay to the on-disk index:
    /// a non-synced option must not come back synced, nor as an erasure.
    @Test func currentEntriesReadTheSameBeforeAndAfterIndexing() async throws {
        try await withTemporaryDirectory { dir in
            let log = try openLog(dir)
            defer { log.close() }
            var records = SampleEvents().records(3)
            records[0].change.isSynced = false
            records[1].change.isErased = true
            records[1].entity = nil
            records.append(
                ChangeRecord(
                    change: EntityChange(
                        entityName: .options, entityId: "localOption", hash: "hashOPTION", changeId: RandomID.make(),
                        instanceId: "remoteInst01", isSynced: false,
                        utcDateChanged: UTCDateTime("2024-05-06 07:08:09.123Z")!),
                    entity: EntityRow(["name": .string("localOption"), "value": .string("1")])))
            _ = try await log.append(records)
            let keys = records.map(\.change.key)
            let fromOverlay = try keys.map { try log.current($0) }
            try await log.flushIndex()
            let fromDisk = try keys.map { try log.current($0) }
            #expect(fromDisk == fromOverlay)
            #expect(fromDisk.map { $0?.isSynced } == [false, true, true, false])
            #expect(fromDisk.map { $0?.isErased } == [false, true, false, false])
            var scanned: [EntityKey: CurrentEntry] = [:]
            try log.forEachCurrent { scanned[$0] = $1 }
            #expect(keys.map { scanned[$0] } == fromOverlay)
            #expect(try log.entityCounts()[.options]?.erased == 0)
            // verify compares the on-disk entries with the records they came from.
            #expect(try log.verify().isSound)
        }
    }

    @Test func theIndexerCatchesUpOnItsOwnWhenIdle() async throws {
        try await withTemporaryDirectory { dir in
            let log = try openLog(dir) {
                $0.indexIdleDelay = .milliseconds(20); $0.indexBatchSize = 400
            }
            defer { log.close() }
            _ = try await log.append(SampleEvents().records(2000))
            let deadline = ContinuousClock.now + .seconds(20)
            while log.indexStatus.checkpoint < 2000 && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(log.indexStatus.checkpoint == 2000)
            #expect(log.indexStatus.overlayCount == 0)
        }
    }

    /// Past half the overlay bound a steady writer pays one step of indexing per commit, and the
    /// overlay hovers there, instead of one full batch emptying it now and then.
    @Test func pastHalfTheBoundEachCommitIndexesAStep() async throws {
        try await withTemporaryDirectory { dir in
            let log = try openLog(dir) {
                $0.indexIdleDelay = .seconds(3600); $0.overlayLimit = 4000; $0.stepIndexBatchSize = 300
            }
            defer { log.close() }
            let records = SampleEvents().records(6000)
            var checkpoints: [UInt64] = []
            for start in stride(from: 0, to: records.count, by: 100) {
                _ = try await log.append(Array(records[start..<(start + 100)]))
                let status = log.indexStatus
                #expect(status.overlayCount <= 2000, "at \(start + 100): \(status.overlayCount) unindexed")
                if status.checkpoint != (checkpoints.last.map { EntityChangeID($0) } ?? .zero) {
                    checkpoints.append(status.checkpoint.rawValue)
                }
            }
            // The first step runs when 2000 are unindexed; each one indexes 300 of them.
            #expect(checkpoints.first == 300)
            #expect(zip(checkpoints, checkpoints.dropFirst()).allSatisfy { $1 - $0 == 300 })
            #expect(log.indexStatus.overlayCount >= 1700)
            try expectLookupsExact(log, records)
        }
    }

    @Test func reopeningALongUnindexedTailIndexesItWithinTheBound() async throws {
        // The overlay is rebuilt on open from the changes after the index checkpoint (all of
        // them when the indexes had to be emptied); it used to take them all into memory.
        try await withTemporaryDirectory { dir in
            let records = SampleEvents(seed: 8).records(5000)
            do {
                let log = try openLog(dir) { $0.indexIdleDelay = .seconds(3600) }
                defer { log.close() }
                _ = try await log.append(records)
                #expect(log.indexStatus.checkpoint == 0)
            }
            let log = try openLog(dir) {
                $0.indexIdleDelay = .seconds(3600); $0.overlayLimit = 1000
            }
            defer { log.close() }
            let status = log.indexStatus
            #expect(status.overlayCount < 500)
            #expect(status.checkpoint.rawValue == 5000 - UInt64(status.overlayCount))
            try expectLookupsExact(log, records)
        }
    }

    @Test func writesFailWhenTheOverlayIsFullAndTheIndexesCannotBeWritten() async throws {
        struct NoSpace: Error {}
        try await withTemporaryDirectory { dir in
            let log = try openLog(dir) {
                $0.indexIdleDelay = .seconds(3600); $0.overlayLimit = 1000
            }
            defer { log.close() }
            let records = SampleEvents(seed: 9).records(2500)
            log.failIndexBatches { NoSpace() }
            _ = try await log.append(Array(records[..<1000]))
            // The overlay is at its bound: the write is refused, not let past it.
            await #expect(throws: EventLogError.self) { try await log.append(Array(records[1000..<1500])) }
            #expect(log.head == 1000)
            #expect(log.indexStatus.overlayCount == 1000)
            log.failIndexBatches(nil)
            #expect(try await log.append(Array(records[1000..<2500])) == 1001...2500)
            try expectLookupsExact(log, records)
        }
    }

    @Test func aFailingIdleIndexerBacksOff() async throws {
        struct NoSpace: Error {}
        try await withTemporaryDirectory { dir in
            let log = try openLog(dir) { $0.indexIdleDelay = .milliseconds(20) }
            defer { log.close() }
            let attempts = Mutex(0)
            log.failIndexBatches {
                attempts.withLock { $0 += 1 }
                return NoSpace()
            }
            _ = try await log.append(SampleEvents(seed: 10).records(100))
            let started = ContinuousClock.now
            try await Task.sleep(for: .seconds(1))
            // 0.2, 0.4, 0.8 s… apart: a handful of attempts (about ten in a minute, should the
            // machine be that busy), where a retry at once makes thousands a second.
            let made = attempts.withLock { $0 }
            #expect(made >= 1 && made <= 12, "\(made) attempts in \(started.duration(to: .now))")
            log.failIndexBatches(nil)
            try await log.flushIndex()
            #expect(log.indexStatus.overlayCount == 0)
        }
    }

    @Test func concurrentWritersShareCommits() async throws {
        try await withTemporaryDirectory { dir in
            let log = try openLog(dir)
            defer { log.close() }
            let records = SampleEvents().records(50 * 20)
            let ranges = try await withThrowingTaskGroup(of: ClosedRange<EntityChangeID>?.self) { group in
                for w in 0..<50 {
                    group.addTask { try await log.append(Array(records[(w * 20)..<(w * 20 + 20)])) }
                }
                return try await group.reduce(into: []) { $0.append($1!) }
            }
            let ids = ranges.flatMap { $0.map(\.rawValue) }.sorted()
            #expect(ids == Array(1...1000))
            #expect(ranges.allSatisfy { $0.count == 20 })
            #expect(log.commitCount < 50, "\(log.commitCount) commits for 50 concurrent writers")
        }
    }

    struct Refused: Error {}

    @Test func aFailingWriteLeavesItsGroupIntact() async throws {
        try await withTemporaryDirectory { dir in
            let log = try openLog(dir)
            defer { log.close() }
            let records = SampleEvents().records(30)
            let bad = Task {
                _ = try await log.write { writer in
                    writer.append(records[0])
                    throw Refused()
                }
            }
            let good = Task { try await log.append(Array(records[1...])) }
            await #expect(throws: Refused.self) { try await bad.value }
            #expect(try await good.value?.count == 29)
            #expect(log.head == 29)
            #expect(try log.entityChangeID(forChangeId: records[0].change.changeId) == nil)
        }
    }

    @Test func theMapGrowsWhenFull() async throws {
        try await withTemporaryDirectory { dir in
            let log = try openLog(dir) {
                $0.initialMapSize = 1 << 20; $0.indexIdleDelay = .milliseconds(10)
            }
            defer { log.close() }
            let records = SampleEvents().records(6000)  // ~5 MB, five times the initial map
            for start in stride(from: 0, to: 6000, by: 1000) {
                _ = try await log.append(Array(records[start..<(start + 1000)]))
            }
            try await log.flushIndex()
            #expect(log.head == 6000)
            #expect(try log.changes(after: 5999, limit: 1).first?.record == records[5999])
        }
    }

    /// A long read grows a map more than half full before it starts: a resize falling due while
    /// it ran would hold up every other read and write until it ended.
    @Test func longReadsMakeRoomInTheMapFirst() async throws {
        try await withTemporaryDirectory { dir in
            let log = try openLog(dir) { $0.initialMapSize = 1 << 20 }
            defer { log.close() }
            let records = SampleEvents(seed: 3).records(20_000)
            var next = 0
            func fillPastHalf() async throws -> Int {
                let size = log.mapUsage.size
                while log.mapUsage.used <= size / 2 {
                    _ = try await log.append(Array(records[next..<(next + 100)]))
                    next += 100
                }
                #expect(log.mapUsage.size == size, "the appends alone did not grow it")
                return size
            }
            var size = try await fillPastHalf()
            try log.forEachCurrent { _, _ in }
            #expect(log.mapUsage.size == 2 * size)
            size = try await fillPastHalf()
            #expect(try log.verify().isSound)
            #expect(log.mapUsage.size == 2 * size)
        }
    }

    @Test func aDirectoryOpensOncePerProcess() async throws {
        try await withTemporaryDirectory { dir in
            let log = try openLog(dir)
            defer { log.close() }
            #expect {
                _ = try openLog(dir)
            } throws: { ($0 as? EventLogError)?.code == .alreadyOpen }
            #expect {
                _ = try openLog(dir) { $0.readOnly = true }
            } throws: { ($0 as? EventLogError)?.code == .alreadyOpen }
        }
    }

    @Test(.timeLimit(.minutes(3))) func aTailSeesEveryCommitInOrder() async throws {
        try await withTemporaryDirectory { dir in
            let log = try openLog(dir)
            defer { log.close() }
            let records = SampleEvents().records(500)
            _ = try await log.append(Array(records[..<100]))
            let reader = Task {
                var ids: [UInt64] = []
                for try await page in log.tail(after: 50, pageSize: 64) {
                    ids += page.map(\.id.rawValue)
                    if ids.last == 500 { break }
                }
                return ids
            }
            for start in stride(from: 100, to: 500, by: 40) {
                _ = try await log.append(Array(records[start..<(start + 40)]))
                try await Task.sleep(for: .milliseconds(2))
            }
            #expect(try await reader.value == Array(51...500))
        }
    }

    @Test func aClosedLogRefusesReadsAndWritesClearly() async throws {
        try await withTemporaryDirectory { dir in
            let log = try openLog(dir)
            _ = try await log.append(SampleEvents().records(10))
            log.close()
            #expect { try log.changes(after: 0, limit: 5) } throws: { ($0 as? EventLogError)?.code == .closed }
            await #expect {
                try await log.append(SampleEvents().records(1))
            } throws: { ($0 as? EventLogError)?.code == .closed }
            log.close()  // closing twice is harmless
        }
    }

    @Test(.timeLimit(.minutes(3))) func aWaitingTailEndsOnCancellation() async throws {
        try await withTemporaryDirectory { dir in
            let log = try openLog(dir)
            defer { log.close() }
            let waiter = Task { try await log.waitForHead(beyond: 10) }
            try await Task.sleep(for: .milliseconds(50))
            waiter.cancel()
            await #expect(throws: CancellationError.self) { try await waiter.value }
        }
    }
}

/// Every lookup of the overlay or the on-disk indexes finds what `records` (appended from id 1,
/// each entity once) wrote.
private func expectLookupsExact(_ log: EntityChangeLog, _ records: [ChangeRecord]) throws {
    for (i, r) in records.enumerated() where i % 7 == 0 {
        let id = EntityChangeID(UInt64(i + 1))
        #expect(try log.entityChangeID(forChangeId: r.change.changeId) == id)
        let entry = try #require(try log.current(r.change.key))
        #expect(entry.id == id)
        #expect(entry.hash == r.change.hash)
        #expect(entry.isErased == r.change.isErased)
        #expect(entry.utcDateChanged == r.change.utcDateChanged)
    }
    #expect(try log.entityChangeID(forChangeId: "notThereAtAll") == nil)
    #expect(try log.current(EntityKey(.notes, "missing")) == nil)
}
