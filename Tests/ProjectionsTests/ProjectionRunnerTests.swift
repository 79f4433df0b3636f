import EventLog
import Foundation
import GRDB
import Projections
import Sync
import Synchronization
import Testing
import Tributary
import TributaryCore
import TributaryTesting

/// The entity_changes view under another schema version, to see a bump rebuild it.
struct BumpedEntityChanges: Projector {
    let inner = EntityChangesProjector()
    var name: String { inner.name }
    var schemaVersion: Int { inner.schemaVersion + 1 }
    var tables: [ViewTable] { inner.tables }
    func createTables(_ db: Database) throws { try inner.createTables(db) }
    func createIndexes(_ db: Database) throws { try inner.createIndexes(db) }
    func apply(_ changes: ArraySlice<LoggedChange>, _ db: Database) throws { try inner.apply(changes, db) }
}

/// The entity_changes view failing part-way through a rebuild (a full disk, a bad record).
struct FailingEntityChanges: Projector {
    struct Failure: Error {}
    let inner = EntityChangesProjector()
    var name: String { inner.name }
    var schemaVersion: Int { inner.schemaVersion }
    var tables: [ViewTable] { inner.tables }
    func createTables(_ db: Database) throws { try inner.createTables(db) }
    func createIndexes(_ db: Database) throws { try inner.createIndexes(db) }
    func apply(_ changes: ArraySlice<LoggedChange>, _ db: Database) throws { try inner.apply(changes, db) }
    func load(_ changes: ArraySlice<LoggedChange>, _ db: Database, rows: inout [EntityKey: Int64]) throws {
        try inner.load(changes, db, rows: &rows)
        if changes.last?.id ?? .zero >= 200 { throw Failure() }
    }
}

@Suite(.timeLimit(.minutes(3))) struct ProjectionRunnerTests {
    /// Files a rebuild left next to `views.sqlite`.
    func scratchFiles(_ views: ViewStore) throws -> [String] {
        let directory = (views.path as NSString).deletingLastPathComponent
        return try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.contains(".rebuild-") }
    }

    /// Debian's SQLite zeroes every freed page by default, which made dropping large views 17×
    /// slower (docs/decisions/0010); every connection to the views turns it off.
    @Test func viewConnectionsDoNotZeroFreedPages() async throws {
        try await withStore { store, _ in
            let views = store.views!
            let reader = try await views.pool.read { try Int.fetchOne($0, sql: "PRAGMA secure_delete") }
            let writer = try await views.pool.write { try Int.fetchOne($0, sql: "PRAGMA secure_delete") }
            #expect(reader == 0)
            #expect(writer == 0)
        }
    }

    @Test func aRebuildThatFailsLeavesEveryOldViewAndNoScratchFiles() async throws {
        try await withStore { store, _ in
            _ = try await store.applier.applyRemote(SampleEvents(seed: 25).records(300), from: .recordInstance)
            try await store.projections!.catchUp()
            let views = store.views!
            let before = try await StandardProjectors.all.asyncMap { try await digests(views, $0) }
            let failing = ProjectionRunner(
                log: store.log, views: views, projectors: [TriliumTablesProjector(), FailingEntityChanges()],
                batchSize: 100, logger: logger)
            await #expect(throws: FailingEntityChanges.Failure.self) { try await failing.rebuild() }
            // Both views as they were — the one whose build succeeded is not swapped in alone.
            #expect(try await StandardProjectors.all.asyncMap { try await digests(views, $0) } == before)
            #expect(try views.states().mapValues(\.lastEntityChangeId) == ["trilium": 300, "entity_changes": 300])
            #expect(try scratchFiles(views).isEmpty)

            // A rebuild that works leaves nothing behind, and one killed mid-way is swept on open.
            try await store.projections!.rebuild()
            #expect(try scratchFiles(views).isEmpty)
            #expect(try await StandardProjectors.all.asyncMap { try await digests(views, $0) } == before)
            let leftover = views.path + ".rebuild-trilium"
            #expect(FileManager.default.createFile(atPath: leftover, contents: Data("partial".utf8)))
            let reopened = try ViewStore(path: views.path)
            try reopened.close()
            #expect(try scratchFiles(views).isEmpty)
        }
    }

    @Test func twentyThousandImportedEventsEqualARebuildRowForRow() async throws {
        try await withStore { store, dir in
            let records = SampleEvents(seed: 21).records(20_000)
            // The views exist (empty) before the first change, so every row below comes through
            // the live path, page by page, not the bulk build a rebuild uses.
            try await store.projections!.prepare()
            for start in stride(from: 0, to: records.count, by: 1000) {
                _ = try await store.applier.applyRemote(Array(records[start..<(start + 1000)]), from: .recordInstance)
                if start == 9000 { try await store.projections!.catchUp() }  // half live, half caught up later
            }
            try await store.projections!.catchUp()
            let live = try await StandardProjectors.all.asyncMap { try await digests(store.views!, $0) }
            #expect(try await ViewVerifier.verify(log: store.log, views: store.views!, scratchDirectory: dir).isEmpty)
            try await store.projections!.rebuild()
            let rebuilt = try await StandardProjectors.all.asyncMap { try await digests(store.views!, $0) }
            #expect(live == rebuilt)
            let notes = records.filter { $0.change.entityName == .notes && !$0.change.isErased }.count
            #expect(live[0]["notes"]?.rows == notes)
            #expect(live[1]["entity_changes"]?.rows == 20_000)
        }
    }

    @Test func aSchemaBumpOrACheckpointPastTheHeadRebuildsTheView() async throws {
        try await withStore { store, _ in
            _ = try await store.applier.applyRemote(SampleEvents(seed: 22).records(500), from: .recordInstance)
            try await store.projections!.catchUp()
            try await store.views!.pool.write { db in
                try db.execute(sql: "DELETE FROM entity_changes WHERE id < 100")
            }
            let bumped = ProjectionRunner(
                log: store.log, views: store.views!, projectors: [BumpedEntityChanges()], logger: logger)
            try await bumped.prepare()
            let state = try #require(try store.views!.states()["entity_changes"])
            #expect(state.schemaVersion == 2)
            #expect(state.lastEntityChangeId == 500)
            #expect(
                try await store.views!.pool.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM entity_changes") }
                    == 500)

            // A checkpoint past the head (the log was replaced by an older copy) rebuilds too.
            try await store.views!.pool.write { db in
                try db.execute(sql: "UPDATE projector_state SET lastEntityChangeId = 9999 WHERE projector = 'trilium'")
                try db.execute(sql: "DELETE FROM notes")
            }
            let runner = ProjectionRunner(log: store.log, views: store.views!, logger: logger)
            try await runner.prepare()
            #expect(runner.checkpoints["trilium"] == 500)
            #expect(
                try await store.views!.pool.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM notes") } ?? 0 > 100)
        }
    }

    @Test func lagReachesZeroAndWaitForReturnsForAnIdAppendedAfterTheCall() async throws {
        try await withStore { store, _ in
            let runner = store.projections!
            let records = SampleEvents(seed: 23).records(300)
            _ = try await store.applier.applyRemote(Array(records[..<100]), from: .recordInstance)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await runner.run() }
                let waiter = Task { try await runner.waitFor(250, timeout: .seconds(30)) }
                try await Task.sleep(for: .milliseconds(50))
                for start in stride(from: 100, to: 300, by: 50) {
                    _ = try await store.applier.applyRemote(Array(records[start..<(start + 50)]), from: .recordInstance)
                }
                try await waiter.value
                #expect(runner.checkpoints.values.allSatisfy { $0 >= 250 })
                try await runner.waitFor(300, timeout: .seconds(30))
                #expect(runner.lag == 0)
                await #expect {
                    try await runner.waitFor(1_000_000, timeout: .milliseconds(200))
                } throws: { ($0 as? ProjectionError)?.code == .timeout }
                group.cancelAll()
            }
        }
    }

    @Test func readersNeverBlockTheProjector() async throws {
        try await withStore { store, _ in
            try await store.projections!.prepare()
            _ = try await store.applier.applyRemote(SampleEvents(seed: 24).records(200), from: .recordInstance)
            let views = store.views!
            // A reader holds a snapshot open until the projector has committed: if readers
            // blocked the projector, this would never finish (the suite's time limit fails it).
            let started = DispatchSemaphore(value: 0)
            let release = DispatchSemaphore(value: 0)
            let reader = Task {
                try await views.pool.read { db -> Int in
                    started.signal()
                    release.wait()
                    return try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM entity_changes") ?? -1
                }
            }
            await withCheckedContinuation { c in
                DispatchQueue.global().async {
                    started.wait(); c.resume()
                }
            }
            try await store.projections!.catchUp()
            release.signal()
            // The reader's snapshot never saw the projector's rows.
            #expect(try await reader.value == 0)
            #expect(
                try await views.pool.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM entity_changes") } == 200)
        }
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}

private final class Counter: Sendable {
    let value = Mutex(0)
}

/// A view that only counts the transactions it is applied in.
private struct CountingProjector: Projector {
    let name = "counting"
    let schemaVersion = 1
    let tables = [ViewTable("counting", key: ["n"])]
    let calls = Counter()

    func createTables(_ db: Database) throws { try db.execute(sql: "CREATE TABLE counting (n INTEGER)") }
    func createIndexes(_ db: Database) throws {}
    func apply(_ changes: ArraySlice<LoggedChange>, _ db: Database) throws { calls.value.withLock { $0 += 1 } }
}

@Suite(.timeLimit(.minutes(3))) struct GatheringTests {
    /// Once caught up, the runner lets commits gather before its next transaction: 19 commits
    /// made while it waits are projected together, not one transaction each, and every change
    /// still arrives.
    @Test func commitsThatArriveWhileTheRunnerWaitsShareOneTransaction() async throws {
        try await withStore { store, _ in
            let counting = CountingProjector()
            let gathering = Duration.seconds(2)
            let runner = ProjectionRunner(
                log: store.log, views: store.views!, projectors: [counting], gathering: gathering, logger: logger)
            try await runner.prepare()
            let records = SampleEvents(seed: 25).records(20)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await runner.run() }
                _ = try await store.applier.applyRemote([records[0]], from: .recordInstance)
                try await runner.waitFor(1, timeout: .seconds(20))
                // The runner has applied the first commit and is now waiting.
                let started = ContinuousClock.now
                for record in records.dropFirst() {
                    _ = try await store.applier.applyRemote([record], from: .recordInstance)
                }
                let elapsed = ContinuousClock.now - started
                try await runner.waitFor(20, timeout: .seconds(20))
                group.cancelAll()
                // One for the first commit, one per gathering period the other 19 spread over (a
                // loaded machine may take longer than one), and one for a period cut short.
                let transactions = counting.calls.value.withLock { $0 }
                let bound = 2 + Int(elapsed / gathering) + 1
                #expect(transactions <= bound, "\(transactions) transactions for 20 commits in \(elapsed)")
            }
            #expect(runner.checkpoints["counting"] == 20)
        }
    }
}
