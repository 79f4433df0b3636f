public import EventLog
import GRDB
public import Logging
import Metrics
public import ServiceLifecycle
import Synchronization
public import TributaryCore

/// Keeps every view up to date with the log: catches up in batches, then follows the tail (woken
/// by commits, not polling). Each batch's rows and each projector's new checkpoint commit in one
/// SQLite transaction, so a crash never leaves a view ahead of or behind its checkpoint.
public final class ProjectionRunner: Service, Sendable {
    public let log: EntityChangeLog
    public let views: ViewStore
    public let projectors: [any Projector]
    let batchSize: Int
    /// How long the runner lets commits gather once it has caught up, before its next transaction.
    let gathering: Duration
    let logger: Logger
    private let state = Mutex(State())
    private let lagGauge = Gauge(label: "tributary.views.lag")
    private let rebuildListeners = Mutex<[@Sendable (String) -> Void]>([])
    /// Held while a page is applied and while a rebuild swaps its tables in: a page read before a
    /// rebuild must not be written over the rebuilt tables, nor its checkpoint over theirs.
    private let swap = AsyncLock()

    /// Calls `listener` with a reason after views are rebuilt (clients reload what they show).
    public func onRebuild(_ listener: @escaping @Sendable (String) -> Void) {
        rebuildListeners.withLock { $0.append(listener) }
    }

    private struct State {
        var checkpoints: [String: EntityChangeID] = [:]
    }

    private let waiters = IdWaiters()

    public init(
        log: EntityChangeLog, views: ViewStore, projectors: [any Projector] = StandardProjectors.all,
        batchSize: Int = 10_000, gathering: Duration = .milliseconds(20), logger: Logger
    ) {
        self.log = log
        self.views = views
        self.projectors = projectors
        self.batchSize = batchSize
        self.gathering = gathering
        self.logger = logger
    }

    /// Creates missing views, and rebuilds from id 0 a view whose schema version changed or
    /// whose checkpoint is past the log head (the log was replaced by an older copy).
    public func prepare() async throws {
        let head = log.head
        let states = try await views.pool.read { db in try ViewStore.states(db) }
        var checkpoints: [String: EntityChangeID] = [:]
        var stale: [any Projector] = []
        for projector in projectors {
            let reason: String
            if let s = states[projector.name] {
                if s.schemaVersion != projector.schemaVersion {
                    reason = "schema version \(s.schemaVersion) → \(projector.schemaVersion)"
                } else if s.lastEntityChangeId > head {
                    reason = "checkpoint \(s.lastEntityChangeId) is past the log head \(head)"
                } else {
                    checkpoints[projector.name] = s.lastEntityChangeId
                    continue
                }
            } else {
                reason = "new view"
            }
            logger.notice(
                "rebuilding view from the log",
                metadata: ["views.projector": "\(projector.name)", "views.reason": "\(reason)"])
            stale.append(projector)
        }
        state.withLock { $0.checkpoints.merge(checkpoints) { _, new in new } }
        if !stale.isEmpty { try await build(stale, progress: nil) }
        publish()
    }

    /// The projectors of the views named (all of them for none).
    ///
    /// - Throws: `ProjectionError` `.unknownView`.
    public func projectors(named names: [String]) throws -> [any Projector] {
        names.isEmpty ? projectors : try StandardProjectors.named(names)
    }

    /// Drops and rebuilds views (all by default) from the log.
    public func rebuild(
        _ names: [String] = [], progress: (@Sendable (EntityChangeID, EntityChangeID) -> Void)? = nil
    ) async throws {
        let selected = try projectors(named: names)
        // The other views keep their checkpoints (no preparing: it could build what we rebuild).
        let states = try await views.pool.read { db in try ViewStore.states(db) }
        state.withLock { s in
            for (name, state) in states where s.checkpoints[name] == nil {
                s.checkpoints[name] = state.lastEntityChangeId
            }
        }
        try await build(selected, progress: progress)
    }

    /// Builds views from scratch up to the head. Each view is loaded into a scratch database of
    /// its own, all at the same time (one core each), without a journal; then one transaction of
    /// `views.sqlite` replaces the old tables with copies of the new ones (docs/decisions/0009).
    /// Readers keep seeing the old views until it commits, and a crash leaves them as they were.
    func build(_ selected: [any Projector], progress: (@Sendable (EntityChangeID, EntityChangeID) -> Void)?)
        async throws
    {
        let target = log.head
        let clock = ContinuousClock()
        let started = clock.now
        let reports = BuildProgress(count: selected.count, target: target, report: progress)
        let scratch = selected.map { views.scratchPath(for: $0.name) }
        for path in scratch { ViewStore.removeScratch(path) }
        defer { for path in scratch { ViewStore.removeScratch(path) } }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (i, projector) in selected.enumerated() {
                group.addTask { [self] in
                    try await buildAside(projector, at: scratch[i], upTo: target) { reports.reached($0, builder: i) }
                }
            }
            try await group.waitForAll()
        }
        let built = clock.now
        try await swap.withLock {
            // Pages the runner applied to the live tables meanwhile are past `target`, and its
            // tail will not deliver them again: the rebuilt tables take them before anyone else
            // writes (their checkpoint would otherwise move past changes they never saw).
            let live = state.withLock { $0.checkpoints }
            try await copyIn(selected, from: scratch, at: target)
            let reached = selected.compactMap { live[$0.name] }.max() ?? .zero
            var cursor = target
            while cursor < reached {
                let page = try log.changes(
                    after: cursor, limit: Int(min(UInt64(batchSize), reached.rawValue - cursor.rawValue)))
                guard let last = page.last?.id else { break }
                try await applyHoldingTheSwap(page)
                cursor = last
            }
        }
        let copied = clock.now
        let reason = "rebuilt views: \(selected.map(\.name).joined(separator: ", "))"
        for listener in rebuildListeners.withLock({ $0 }) { listener(reason) }
        // The build went through the WAL in one transaction; fold it back and truncate it.
        try await views.pool.writeWithoutTransaction { db in
            _ = try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)")
        }
        logger.debug(
            "views rebuilt",
            metadata: [
                "views.rebuild.built": "\(started.duration(to: built))",
                "views.rebuild.copied": "\(built.duration(to: copied))",
                "views.rebuild.checkpointed": "\(copied.duration(to: clock.now))",
            ])
        publish()
    }

    /// Replaces the live tables of `selected` with their scratch builds in one transaction, and
    /// moves their checkpoints to `target`.
    private func copyIn(_ selected: [any Projector], from scratch: [String], at target: EntityChangeID) async throws {
        try await views.pool.writeWithoutTransaction { db in
            // ATTACH is refused inside a transaction.
            for (i, path) in scratch.enumerated() {
                try db.execute(sql: "ATTACH DATABASE ? AS \(Self.scratchSchema(i))", arguments: [path])
            }
            defer {
                for i in scratch.indices { try? db.execute(sql: "DETACH DATABASE \(Self.scratchSchema(i))") }
            }
            try db.inTransaction {
                for (i, projector) in selected.enumerated() {
                    try projector.dropTables(db)
                    try projector.createTables(db)
                    try projector.createIndexes(db)
                    // The same columns and indexes on both sides, into empty tables: SQLite copies
                    // records and index entries as they are (its transfer optimization).
                    for table in projector.tables {
                        let name = table.name.quotedDatabaseIdentifier
                        try db.execute(sql: "INSERT INTO main.\(name) SELECT * FROM \(Self.scratchSchema(i)).\(name)")
                    }
                    try Self.recordRebuild(projector, at: target, db)
                }
                return .commit
            }
        }
        state.withLock { s in
            for projector in selected { s.checkpoints[projector.name] = target }
        }
    }

    static func scratchSchema(_ i: Int) -> String { "rebuild\(i)" }

    private static func recordRebuild(_ projector: any Projector, at id: EntityChangeID, _ db: Database) throws {
        try db.execute(
            sql: """
                INSERT OR REPLACE INTO projector_state (projector, lastEntityChangeId, schemaVersion, rebuiltAt)
                VALUES (?, ?, ?, ?)
                """,
            arguments: [
                projector.name, Int64(bitPattern: id.rawValue), projector.schemaVersion,
                UTCDateTime.now().description,
            ])
    }

    /// Loads one view from the log into the scratch database at `path`, rows first and indexes
    /// last. Nothing reads it until it is complete, so it runs without a journal or fsync — a
    /// crash only leaves a file that the next open removes.
    private func buildAside(
        _ projector: any Projector, at path: String, upTo target: EntityChangeID,
        progress: @escaping @Sendable (EntityChangeID) -> Void
    ) async throws {
        var configuration = Configuration()
        configuration.label = "rebuild-\(projector.name)"
        configuration.prepareDatabase { db in
            try db.execute(
                sql: """
                    PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -131072;
                    \(ViewStore.pragmas)
                    """)
        }
        let log = self.log
        let batchSize = self.batchSize
        let queue = try DatabaseQueue(path: path, configuration: configuration)
        let clock = ContinuousClock()
        let started = clock.now
        let rowsLoaded = try await queue.write { db in
            try Self.load(projector, from: log, upTo: target, batchSize: batchSize, into: db, progress: progress)
        }
        try queue.close()
        logger.debug(
            "view built aside",
            metadata: [
                "views.view": "\(projector.name)", "views.rebuild.rows": "\(started.duration(to: rowsLoaded))",
                "views.rebuild.indexed": "\(rowsLoaded.duration(to: clock.now))",
            ])
    }

    /// Creates a view's tables and loads them from the log up to `target`, then indexes them.
    private static func load(
        _ projector: any Projector, from log: EntityChangeLog, upTo target: EntityChangeID, batchSize: Int,
        into db: Database, progress: (EntityChangeID) -> Void
    ) throws -> ContinuousClock.Instant {
        try projector.createTables(db)
        var rows: [EntityKey: Int64] = [:]
        rows.reserveCapacity(Int(min(target.rawValue, 1 << 22)))
        var cursor = EntityChangeID.zero
        while cursor < target {
            let page = try log.changes(after: cursor, limit: batchSize).prefix { $0.id <= target }
            guard let last = page.last?.id else { break }
            try projector.load(page[...], db, rows: &rows)
            cursor = last
            progress(cursor)
        }
        let rowsLoaded = ContinuousClock.now
        try projector.createIndexes(db)
        return rowsLoaded
    }

    /// Projects everything up to the log head as of the call.
    public func catchUp(progress: (@Sendable (EntityChangeID, EntityChangeID) -> Void)? = nil) async throws {
        let known = state.withLock { $0.checkpoints }
        if projectors.contains(where: { known[$0.name] == nil }) { try await prepare() }
        let target = log.head
        var page = try readPage(after: minimumCheckpoint)
        while let last = page.last?.id {
            // Read the next page from the log while SQLite writes this one.
            async let following = readPage(after: last)
            try await apply(page)
            progress?(last, target)
            if last >= target {
                _ = try await following
                break
            }
            page = try await following
        }
    }

    /// Runs until cancelled or graceful shutdown: catch up, then follow the tail.
    ///
    /// A page that fails (a full disk under views.sqlite, say) is retried with backoff from the
    /// checkpoints, which never passed it: the views fall behind, and `lag` and the metric say so,
    /// but the node goes on serving and writing its log, and the views catch up once the cause is
    /// gone.
    public func run() async throws {
        var backoff = Backoff(cap: .seconds(30))
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await catchUp()
                backoff.reset()
                for try await page in log.tail(after: minimumCheckpoint, pageSize: batchSize)
                    .cancelOnGracefulShutdown()
                {
                    try await apply(page)
                    // Caught up: one transaction per commit would rewrite the same index and
                    // table pages a thousand times a second under a steady writer, and that
                    // write-back delays the log's fsyncs. Letting commits gather costs the views
                    // this much lag.
                    if page.count < batchSize { try await Task.sleep(for: gathering) }
                }
                return
            } catch is CancellationError {
                return
            } catch let error as EventLogError where error.code == .closed {
                return
            } catch {
                recordLag()
                let wait = backoff.next()
                logger.error(
                    "projecting the views failed; retrying",
                    metadata: ["error": "\(error)", "views.retryIn": "\(wait)"])
                do {
                    try await cancelWhenGracefulShutdown { try await Task.sleep(for: wait) }
                } catch {
                    return
                }
            }
        }
    }

    private func readPage(after id: EntityChangeID) throws -> [LoggedChange] {
        try log.changes(after: id, limit: batchSize)
    }

    var minimumCheckpoint: EntityChangeID {
        state.withLock { $0.checkpoints.values.min() ?? .zero }
    }

    /// Applies a page to every projector not yet past it, in one transaction.
    func apply(_ page: [LoggedChange]) async throws {
        try await swap.withLock { try await applyHoldingTheSwap(page) }
    }

    private func applyHoldingTheSwap(_ page: [LoggedChange]) async throws {
        guard let last = page.last?.id else { return }
        let checkpoints = state.withLock { $0.checkpoints }
        let work = projectors.filter { (checkpoints[$0.name] ?? .zero) < last }
        guard !work.isEmpty else { return }
        try await views.pool.write { db in
            for projector in work {
                let from = checkpoints[projector.name] ?? .zero
                let start = page.firstIndex { $0.id > from } ?? page.endIndex
                try projector.apply(page[start...], db)
                try ViewStore.setCheckpoint(db, projector.name, last)
            }
        }
        state.withLock { s in
            for projector in work { s.checkpoints[projector.name] = last }
        }
        publish()
    }

    /// Each view's checkpoint.
    public var checkpoints: [String: EntityChangeID] { state.withLock { $0.checkpoints } }

    /// How far the slowest view trails the log head.
    public var lag: UInt64 {
        let head = log.head.rawValue
        return head - min(head, minimumCheckpoint.rawValue)
    }

    private func publish() {
        recordLag()
        waiters.resume(upTo: minimumCheckpoint)
    }

    /// Sets the lag metric to `lag` now. The runner records it after each page; whoever exports
    /// metrics calls this before, since views that are stuck (or idle while the log grows) have
    /// no page to record it after.
    public func recordLag() {
        lagGauge.record(Double(lag))
    }

    /// Returns once every view has projected `id` (it may not exist yet when called).
    ///
    /// - Throws: `ProjectionError.timeout` after `timeout`; `CancellationError`.
    public func waitFor(_ id: EntityChangeID, timeout: Duration) async throws {
        try await waiters.wait(for: id, timeout: timeout) { [self] in
            minimumCheckpoint
        } timeoutError: {
            ProjectionError(.timeout, "the views did not reach change \(id) within \(timeout)")
        }
    }
}

/// Reports the slowest of several concurrent view builds.
private final class BuildProgress: Sendable {
    private let cursors: Mutex<[EntityChangeID]>
    private let target: EntityChangeID
    private let report: (@Sendable (EntityChangeID, EntityChangeID) -> Void)?

    init(count: Int, target: EntityChangeID, report: (@Sendable (EntityChangeID, EntityChangeID) -> Void)?) {
        cursors = Mutex(Array(repeating: .zero, count: count))
        self.target = target
        self.report = report
    }

    func reached(_ id: EntityChangeID, builder: Int) {
        guard let report else { return }
        let slowest = cursors.withLock { cursors in
            cursors[builder] = id
            return cursors.min() ?? id
        }
        report(slowest, target)
    }
}
