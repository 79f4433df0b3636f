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
    let logger: Logger
    private let state = Mutex(State())
    private let lagGauge = Gauge(label: "tributary.views.lag")
    private let rebuildListeners = Mutex<[@Sendable (String) -> Void]>([])

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
        batchSize: Int = 10_000, logger: Logger
    ) {
        self.log = log
        self.views = views
        self.projectors = projectors
        self.batchSize = batchSize
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

    /// Drops and rebuilds views (all by default) from the log.
    public func rebuild(
        _ names: [String] = [], progress: (@Sendable (EntityChangeID, EntityChangeID) -> Void)? = nil
    ) async throws {
        let selected = names.isEmpty ? projectors : try StandardProjectors.named(names)
        // The other views keep their checkpoints (no preparing: it could build what we rebuild).
        let states = try await views.pool.read { db in try ViewStore.states(db) }
        state.withLock { s in
            for (name, state) in states where s.checkpoints[name] == nil {
                s.checkpoints[name] = state.lastEntityChangeId
            }
        }
        try await build(selected, progress: progress)
    }

    /// Builds views from scratch up to the head in one transaction: readers keep seeing the old
    /// views until it commits, and a crash leaves them as they were. Rows are loaded into tables
    /// without indexes, which are created once at the end.
    func build(_ selected: [any Projector], progress: (@Sendable (EntityChangeID, EntityChangeID) -> Void)?)
        async throws
    {
        let target = log.head
        let log = self.log
        let batchSize = self.batchSize
        let reached = try await views.pool.write { db -> EntityChangeID in
            var rows = Array(repeating: [EntityKey: Int64](), count: selected.count)
            for projector in selected {
                try projector.dropTables(db)
                try projector.createTables(db)
            }
            var cursor = EntityChangeID.zero
            while cursor < target {
                let page = try log.changes(after: cursor, limit: batchSize).prefix { $0.id <= target }
                guard let last = page.last?.id else { break }
                for (i, projector) in selected.enumerated() { try projector.load(page[...], db, rows: &rows[i]) }
                cursor = last
                progress?(cursor, target)
            }
            for projector in selected {
                try projector.createIndexes(db)
                try db.execute(
                    sql: """
                        INSERT OR REPLACE INTO projector_state (projector, lastEntityChangeId, schemaVersion, rebuiltAt)
                        VALUES (?, ?, ?, ?)
                        """,
                    arguments: [
                        projector.name, Int64(bitPattern: cursor.rawValue), projector.schemaVersion,
                        UTCDateTime.now().description,
                    ])
            }
            return cursor
        }
        state.withLock { s in
            for projector in selected { s.checkpoints[projector.name] = reached }
        }
        let reason = "rebuilt views: \(selected.map(\.name).joined(separator: ", "))"
        for listener in rebuildListeners.withLock({ $0 }) { listener(reason) }
        // The build went through the WAL in one transaction; fold it back and truncate it.
        try await views.pool.writeWithoutTransaction { db in
            _ = try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)")
        }
        publish()
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
    public func run() async throws {
        try await catchUp()
        do {
            for try await page in log.tail(after: minimumCheckpoint, pageSize: batchSize).cancelOnGracefulShutdown() {
                try await apply(page)
            }
        } catch is CancellationError {
            return
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
        let reached = minimumCheckpoint
        lagGauge.record(Double(log.head.rawValue - min(log.head.rawValue, reached.rawValue)))
        waiters.resume(upTo: reached)
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
