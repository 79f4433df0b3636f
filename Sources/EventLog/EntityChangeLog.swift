import Dispatch
import Glibc
public import Logging
import Metrics
import Synchronization
public import TributaryCore

/// The append-only `entity_changes` log of one node, in LMDB under `<data>/log/`.
///
/// Writes are group-committed on one writer queue: every write waiting when a commit starts joins
/// it (one transaction, one fsync) and is acknowledged only after the commit is durable. The
/// commit point is the append to `changes`; the random-key indexes (`current`, `changeIds`)
/// follow in large sorted batches with their own checkpoint, and an in-memory overlay of the
/// entries after that checkpoint keeps every lookup exact (see docs/decisions/0002).
public final class EntityChangeLog: Sendable {
    public struct Configuration: Sendable {
        /// Initial LMDB map size; the map doubles whenever it is full.
        public var initialMapSize: Int = 1 << 30
        /// `true`: fsync every commit before acknowledging it. `false` (`--durability none`):
        /// faster, and the last acknowledged commits can be lost on a power failure.
        public var fsync = true
        /// Most unindexed changes held in the overlay; at this bound writers wait for the indexer.
        public var overlayLimit = 2_000_000
        /// Changes per index batch when the indexes must catch up at once (`flushIndex`, or the
        /// overlay at its bound).
        public var indexBatchSize = 100_000
        /// Changes per index batch run between writes (the log idle, or the overlay past half its
        /// bound): smaller, so a write that arrives during one waits 40-120 ms (measured at
        /// 16k-300k changes), not the half second of a full batch.
        public var stepIndexBatchSize = 16_384
        /// The indexer runs once no commit has happened for this long (or the overlay is half full).
        public var indexIdleDelay: Duration = .milliseconds(100)
        /// Open for reading only (another process may be writing).
        public var readOnly = false
        /// Empty `current` and `changeIds` on open and index the whole log again (`tributary
        /// reindex`, the remedy for a damaged index). The log's records are not touched.
        public var rebuildIndexes = false
        /// Told how far the open has read the changes after the index checkpoint, and the head.
        public var openProgress: (@Sendable (_ read: EntityChangeID, _ head: EntityChangeID) -> Void)?

        public init() {}
    }

    public let instanceId: String
    public let directory: String
    let configuration: Configuration
    let logger: Logger
    let env: Environment
    let changesDB: Database
    let currentDB: Database
    let changeIdsDB: Database
    let metaDB: Database
    private let lock: DirectoryLock
    let overlay: Mutex<IndexOverlay>
    private let overlayError: Mutex<EventLogError?>
    let notifier: CommitNotifier
    private let queue = DispatchQueue(label: "tributary.log.writer")
    private let writer = Mutex(WriterState())
    private let appendedCounter = Counter(label: "tributary_log_appended_changes_total")
    private let commitTimer = Timer(label: "tributary_log_commit_duration")
    /// Changes not yet in the on-disk indexes (held in the overlay): how far the indexer trails.
    private let unindexedGauge = Gauge(label: "tributary_log_unindexed_changes")
    /// Tests only: see `failIndexBatches`.
    private let indexFault = Mutex<(@Sendable () -> (any Error)?)?>(nil)
    /// Tests only: see `runBetweenCommitAndPublish`.
    private let betweenCommitAndPublish = Mutex<(@Sendable () -> Void)?>(nil)
    /// Reused by every group commit (writer queue only).
    private nonisolated(unsafe) let group = GroupLayer()

    struct WriterState {
        var pending: [WriteJob] = []
        var drainScheduled = false
        var closed = false
        var idleTimerScheduled = false
        var lastCommitNanos: UInt64 = 0
        var commits = 0
        /// Index batches failed in a row (the idle indexer backs off by it).
        var indexFailures = 0
    }

    struct WriteJob: Sendable {
        let run: @Sendable (inout LogWriter) throws -> Void
        let complete: @Sendable (Result<ClosedRange<EntityChangeID>?, any Error>) -> Void
    }

    /// Opens (creating when needed) the log in `directory`.
    ///
    /// - Throws: `EventLogError` — `.alreadyOpen` (this process has it open), `.directoryInUse`
    ///   (another process writes it), `.unsupportedFormat`, `.notFound` (read-only or rebuilding
    ///   the indexes, and no log),
    ///   `.corruptRecord` (a record after the index checkpoint cannot be read), `.storage`.
    public init(directory: String, configuration: Configuration = Configuration(), logger: Logger) throws {
        self.directory = directory
        self.configuration = configuration
        self.logger = logger
        // Reading, or rebuilding the indexes of, a log that is not there must not create one.
        if configuration.readOnly || configuration.rebuildIndexes {
            guard access(directory + "/data.mdb", R_OK) == 0 else {
                throw EventLogError(.notFound, "no log in \(directory) (data.mdb is missing or unreadable)")
            }
        } else {
            try makeDirectories(directory)
        }
        lock = try DirectoryLock(directory: directory, exclusive: !configuration.readOnly)
        do {
            var options = Environment.Options(mapSize: configuration.initialMapSize)
            options.readOnly = configuration.readOnly
            options.noSync = !configuration.fsync
            let env = try Environment(
                path: directory, options: options, databases: ["changes", "current", "changeIds", "meta"])
            self.env = env
            changesDB = env.database("changes")
            currentDB = env.database("current")
            changeIdsDB = env.database("changeIds")
            metaDB = env.database("meta")
            let (instanceId, checkpoint, head) = try EntityChangeLog.prepare(
                env: env, changes: changesDB, current: currentDB, changeIds: changeIdsDB, meta: metaDB,
                configuration: configuration, logger: logger)
            self.instanceId = instanceId
            notifier = CommitNotifier(head: head)
            overlay = Mutex(IndexOverlay(configuration, checkpoint: checkpoint))
            overlayError = Mutex(nil)
        } catch let error as LMDBError {
            lock.release()
            throw EventLogError.storage(error)
        } catch {
            lock.release()
            throw error
        }
        do {
            try rebuildOverlay()
        } catch let error as EventLogError where configuration.readOnly {
            // Reading the log still works; lookups will report the damaged record.
            overlayError.withLock { $0 = error }
        } catch {
            env.close()
            lock.release()
            throw error
        }
    }

    /// Reads (or on first open, writes) the format, identity and index checkpoint.
    private static func prepare(
        env: Environment, changes: Database, current: Database, changeIds: Database, meta: Database,
        configuration: Configuration, logger: Logger
    ) throws -> (String, EntityChangeID, EntityChangeID) {
        func metaString(_ v: UnsafeRawBufferPointer?) -> String? { v.map { String(decoding: $0, as: UTF8.self) } }
        if configuration.readOnly {
            let txn = try ReadTransaction(env)
            let format = try MetaKey.format.withBytes { try txn.get(meta, $0) }.flatMap(metaString)
            try checkFormat(format)
            let instanceId = try MetaKey.instanceId.withBytes { try txn.get(meta, $0) }.flatMap(metaString) ?? ""
            let checkpoint =
                try MetaKey.indexCheckpoint.withBytes { try txn.get(meta, $0) }
                .flatMap(IndexCoding.id(fromKey:)) ?? .zero
            let head = try txn.last(changes).flatMap { IndexCoding.id(fromKey: $0.key) } ?? .zero
            txn.abort()
            return (instanceId, min(checkpoint, head), head)
        }
        let txn = try WriteTransaction(env)
        let format = try MetaKey.format.withBytes { try txn.get(meta, $0) }.flatMap(metaString)
        try checkFormat(format)
        if format == nil {
            try putMeta(txn, meta, MetaKey.format, Array("1".utf8))
            try putMeta(txn, meta, MetaKey.instanceId, Array(RandomID.make().utf8))
        }
        let instanceId = try MetaKey.instanceId.withBytes { try txn.get(meta, $0) }.flatMap(metaString) ?? ""
        var checkpoint =
            try MetaKey.indexCheckpoint.withBytes { try txn.get(meta, $0) }
            .flatMap(IndexCoding.id(fromKey:)) ?? .zero
        let head = try txn.last(changes).flatMap { IndexCoding.id(fromKey: $0.key) } ?? .zero
        if checkpoint > head || configuration.rebuildIndexes {
            if configuration.rebuildIndexes {
                logger.info("rebuilding the indexes from the log, as asked", metadata: ["log.head": "\(head)"])
            } else {
                // Only possible after losing unsynced commits (fsync off): the indexes describe
                // changes that are gone, so rebuild them from the log.
                logger.warning(
                    "index checkpoint is past the log head; rebuilding indexes",
                    metadata: ["log.index.checkpoint": "\(checkpoint)", "log.head": "\(head)"])
            }
            try txn.empty(current)
            try txn.empty(changeIds)
            checkpoint = .zero
            try putMeta(txn, meta, MetaKey.indexCheckpoint, IndexCoding.idKey(.zero))
        }
        try txn.commit()
        return (instanceId, checkpoint, head)
    }

    private static func checkFormat(_ format: String?) throws {
        if let format, format != "1" {
            throw EventLogError(
                .unsupportedFormat, "the log has format \(format); this tributary reads format 1 — upgrade tributary")
        }
    }

    private static func putMeta(_ txn: borrowing WriteTransaction, _ meta: Database, _ key: String, _ value: [UInt8])
        throws
    {
        try key.withBytes { k in try value.withUnsafeBytes { v in try txn.put(meta, k, v) } }
    }

    /// Scans the changes after the index checkpoint back into the overlay.
    ///
    /// Writable, it indexes as it goes whenever the overlay reaches its bound, so however many
    /// changes trail the checkpoint (all of them, when `prepare` had to empty the indexes) the
    /// overlay stays within it.
    private func rebuildOverlay() throws {
        var cursor = overlay.withLock { $0.checkpoint }
        let chunk = configuration.readOnly ? 100_000 : max(1, min(100_000, configuration.overlayLimit / 2))
        var scanned = 0
        while true {
            var n = 0
            try read { txn in
                try IndexCoding.idKey(cursor.next).withUnsafeBytes { start in
                    try txn.scan(changesDB, from: start) { key, value in
                        guard let id = IndexCoding.id(fromKey: key) else {
                            throw EventLogError.corrupt(cursor.next, "bad key")
                        }
                        let view = try RecordView(id: id, bytes: value)
                        overlay.withLock {
                            $0.add(id: id, key: view.key, changeId: view.changeId, entry: view.currentEntry)
                        }
                        cursor = id
                        n += 1
                        return n < chunk
                    }
                }
            }
            scanned += n
            configuration.openProgress?(cursor, head)
            if !configuration.readOnly {
                while overlay.withLock({ $0.count }) >= configuration.overlayLimit / 2 { try indexBatch() }
            }
            if n < chunk { break }
        }
        // Every change scanned went into the overlay; those no longer in it were indexed.
        let count = overlay.withLock { $0.count }
        let indexed = scanned - count
        if scanned > 0 {
            logger.info(
                "rebuilt the index overlay from the log",
                metadata: ["log.overlay.count": "\(count)", "log.indexed": "\(indexed)"])
        }
    }

    // MARK: - Reading

    /// Runs `body` in a read transaction.
    func read<R>(_ body: (borrowing ReadTransaction) throws -> R) throws -> R {
        let txn: ReadTransaction
        do {
            txn = try ReadTransaction(env)
        } catch {
            throw EventLogError.storage(error)
        }
        do {
            let result = try body(txn)
            txn.abort()
            return result
        } catch let error as LMDBError {
            throw EventLogError.storage(error)
        }
    }

    /// The id of the newest change (`.zero` for an empty log).
    public var head: EntityChangeID {
        if configuration.readOnly {
            return (try? read { txn in try txn.last(changesDB).flatMap { IndexCoding.id(fromKey: $0.key) } })
                .flatMap { $0 } ?? .zero
        }
        return notifier.head
    }

    /// Up to `limit` changes with ids greater than `after`, in id order.
    ///
    /// - Throws: `EventLogError.corruptRecord` naming the first damaged record in the range.
    public func changes(after: EntityChangeID, limit: Int) throws -> [LoggedChange] {
        var result: [LoggedChange] = []
        result.reserveCapacity(min(limit, 4096))
        try forEachRecord(after: after) { view in
            result.append(view.logged)
            return result.count < limit
        }
        return result
    }

    /// The entity rows of the changes at `ids`, in order, read in one transaction (nil for an
    /// erasure or an id the log does not hold). Ascending ids read the log front to back.
    public func rows(at ids: [EntityChangeID]) throws -> [EntityRow?] {
        try read { txn in
            try ids.map { id in
                try withStoredRecord(id, txn: txn.ref) { view in
                    view.hasEntity ? EntityRow(trusted: [UInt8](view.entityBytes)) : nil
                } ?? nil
            }
        }
    }

    /// Tests only: each index batch first calls `fault` and fails with the error it returns.
    package func failIndexBatches(_ fault: (@Sendable () -> (any Error)?)?) {
        indexFault.withLock { $0 = fault }
    }

    /// Tests only: `hook` runs on the writer queue after each commit and before it is published
    /// (its index entries and the head), when readers already see its records in the log.
    package func runBetweenCommitAndPublish(_ hook: (@Sendable () -> Void)?) {
        betweenCommitAndPublish.withLock { $0 = hook }
    }

    /// Visits up to `limit` changes after `after` one at a time, in one read transaction. A
    /// damaged record throws when it is reached, after the changes before it were visited.
    ///
    /// - Throws: `EventLogError.corruptRecord` naming the damaged record.
    public func forEachChange(after: EntityChangeID, limit: Int, _ body: (LoggedChange) throws -> Void) throws {
        var n = 0
        try forEachRecord(after: after) { view in
            try body(view.logged)
            n += 1
            return n < limit
        }
    }

    /// Visits checked records with ids greater than `after` until `body` returns false, in one
    /// read transaction (zero copy: the view is valid only inside `body`).
    func forEachRecord(after: EntityChangeID, _ body: (RecordView) throws -> Bool) throws {
        try read { txn in
            try IndexCoding.idKey(after.next).withUnsafeBytes { start in
                try txn.scan(changesDB, from: start) { key, value in
                    guard let id = IndexCoding.id(fromKey: key) else {
                        throw EventLogError.corrupt(after.next, "a key of \(key.count) bytes in the changes table")
                    }
                    return try body(RecordView(id: id, bytes: value))
                }
            }
        }
    }

    /// Visits up to `limit` records after `after` as raw checked bytes: the cheapest full read
    /// (what W2 measures). Returns the last id visited.
    public func scanRecords(
        after: EntityChangeID, limit: Int, _ body: (EntityChangeID, UnsafeRawBufferPointer) throws -> Void
    ) throws -> EntityChangeID? {
        var last: EntityChangeID?
        var n = 0
        try forEachRecord(after: after) { view in
            try body(view.id, view.bytes)
            last = view.id
            n += 1
            return n < limit
        }
        return last
    }

    /// The change stored at `id`.
    public func change(at id: EntityChangeID) throws -> LoggedChange? {
        try read { txn in try withStoredRecord(id, txn: txn.ref) { $0.logged } }
    }

    /// The latest change of an entity.
    public func current(_ key: EntityKey) throws -> CurrentEntry? {
        if let error = overlayError.withLock({ $0 }) { throw error }
        if let entry = overlay.withLock({ $0.currentEntry(key) }) { return entry }
        // The overlay is consulted first and the transaction opened after it: an entry the
        // indexer has just moved to disk is then visible in the transaction.
        return try read { txn in try storedCurrent(key, txn: txn.ref) }
    }

    /// The id of the change with this changeId, if the log holds it.
    public func entityChangeID(forChangeId changeId: String) throws -> EntityChangeID? {
        if let error = overlayError.withLock({ $0 }) { throw error }
        if let id = overlay.withLock({ $0.changeID(changeId) }) { return id }
        return try read { txn in try storedChangeID(changeId, txn: txn.ref) }
    }

    /// A caller-defined checkpoint (e.g. a peer's sync cursor).
    public func checkpoint(_ name: String) throws -> [UInt8]? {
        try read { txn in try (MetaKey.userPrefix + name).withBytes { try txn.get(metaDB, $0).map { Array($0) } } }
    }

    /// Visits the latest change of every entity (of `name`, or all), in no particular order.
    public func forEachCurrent(of name: EntityName? = nil, _ body: (EntityKey, CurrentEntry) throws -> Void) throws {
        try forEachCurrent(prefixes: [name.map { [$0.code] } ?? []], body)
    }

    /// Visits the latest change of every entity of the given names whose entityId starts with one
    /// of the given bytes, in no particular order: sectors of the content-hash check, each read as
    /// one key range, with one pass over the unindexed entries for all of them.
    public func forEachCurrent(
        idFirstBytes: [EntityName: Set<UInt8>], _ body: (EntityKey, CurrentEntry) throws -> Void
    ) throws {
        let prefixes = idFirstBytes.flatMap { name, bytes in bytes.sorted().map { [name.code, $0] } }
        guard !prefixes.isEmpty else { return }
        try forEachCurrent(prefixes: prefixes, body)
    }

    /// The entries whose `current` key (name code, then entityId) starts with one of `prefixes`
    /// (none of them a prefix of another; one empty prefix: every entry).
    private func forEachCurrent(prefixes: [[UInt8]], _ body: (EntityKey, CurrentEntry) throws -> Void) throws {
        if let error = overlayError.withLock({ $0 }) { throw error }
        makeRoomBeforeALongRead()
        // The overlay snapshot is taken before the transaction (see `current(_:)`).
        let pending = overlay.withLock { $0.currentEntries(withKeyPrefixes: prefixes) }
        try read { txn in
            for prefix in prefixes {
                try prefix.withUnsafeBytes { start in
                    try txn.scan(currentDB, from: prefix.isEmpty ? nil : start) { key, value in
                        guard key.starts(with: start) else { return false }
                        let entityKey = try IndexCoding.storedEntityKey(key)
                        guard pending[entityKey] == nil else { return true }
                        try body(entityKey, try IndexCoding.storedCurrent(value, of: entityKey))
                        return true
                    }
                }
            }
        }
        for (key, entry) in pending { try body(key, entry) }
    }

    /// The entity of every change after `after`, up to `through`, in id order (an entity changed
    /// twice is listed twice).
    public func changedKeys(after: EntityChangeID, through: EntityChangeID) throws -> [EntityKey] {
        guard through > after else { return [] }
        var keys: [EntityKey] = []
        try forEachRecord(after: after) { view in
            guard view.id <= through else { return false }
            keys.append(view.key)
            return view.id < through
        }
        return keys
    }

    /// Entities by name: how many are live and how many erased.
    public func entityCounts() throws -> [EntityName: (live: Int, erased: Int)] {
        let pending = overlay.withLock { $0.allCurrent }
        var counts: [EntityName: (live: Int, erased: Int)] = [:]
        func count(_ name: EntityName, _ erased: Bool) {
            var c = counts[name] ?? (0, 0)
            if erased { c.erased += 1 } else { c.live += 1 }
            counts[name] = c
        }
        try read { txn in
            try txn.scan(currentDB, from: nil) { key, value in
                let entityKey = try IndexCoding.storedEntityKey(key)
                if pending[entityKey] == nil {
                    count(entityKey.name, try IndexCoding.storedCurrent(value, of: entityKey).isErased)
                }
                return true
            }
        }
        for (key, entry) in pending { count(key.name, entry.isErased) }
        return counts
    }

    /// Number of stored changes.
    public func changeCount() throws -> Int {
        try read { txn in try env.count(changesDB, in: txn) }
    }

    /// Where the on-disk indexes stand.
    public struct IndexStatus: Sendable {
        public var checkpoint: EntityChangeID
        public var head: EntityChangeID
        /// Changes held in the overlay.
        public var overlayCount: Int
    }

    public var indexStatus: IndexStatus {
        let (checkpoint, count) = overlay.withLock { ($0.checkpoint, $0.count) }
        return IndexStatus(checkpoint: checkpoint, head: head, overlayCount: count)
    }

    // MARK: - Lookups in an open transaction

    // The `stored…` lookups read the disk alone. A reader consults the overlay before opening its
    // transaction (see `current(_:)`); the writer, which the indexer never runs beside, may
    // consult it inside (`indexed…`).

    func storedCurrent(_ key: EntityKey, txn: TransactionRef) throws -> CurrentEntry? {
        try IndexCoding.currentKey(key).withUnsafeBytes { k in
            try txn.get(currentDB, k).map { v throws(EventLogError) in try IndexCoding.storedCurrent(v, of: key) }
        }
    }

    func storedChangeID(_ changeId: String, txn: TransactionRef) throws -> EntityChangeID? {
        try changeId.withBytes { k in
            try txn.get(changeIdsDB, k).map { v throws(EventLogError) in try IndexCoding.storedChangeID(v, of: changeId)
            }
        }
    }

    /// `body` applied to the record stored at `id` (nil: the log does not hold it).
    func withStoredRecord<R>(_ id: EntityChangeID, txn: TransactionRef, _ body: (RecordView) throws -> R) throws
        -> R?
    {
        try IndexCoding.idKey(id).withUnsafeBytes { k in
            try txn.get(changesDB, k).map { try body(try RecordView(id: id, bytes: $0)) }
        }
    }

    func indexedCurrent(_ key: EntityKey, txn: TransactionRef) throws -> CurrentEntry? {
        if let entry = overlay.withLock({ $0.currentEntry(key) }) { return entry }
        return try storedCurrent(key, txn: txn)
    }

    func indexedChangeID(_ changeId: String, txn: TransactionRef) throws -> EntityChangeID? {
        if let id = overlay.withLock({ $0.changeID(changeId) }) { return id }
        return try storedChangeID(changeId, txn: txn)
    }

    func storedRecord(_ id: EntityChangeID, txn: TransactionRef) throws -> ChangeRecord? {
        try withStoredRecord(id, txn: txn) { $0.record }
    }

    func metaValue(_ key: String, txn: TransactionRef) throws -> [UInt8]? {
        try key.withBytes { k in try txn.get(metaDB, k).map { Array($0) } }
    }

    // MARK: - Writing

    /// The outcome of a write: what the body returned and the ids it appended (nil: none).
    public struct Committed<Value: Sendable>: Sendable {
        public var value: Value
        public var range: ClosedRange<EntityChangeID>?
    }

    /// Runs `body` inside the next group commit and returns once that commit is durable.
    ///
    /// If `body` throws, nothing it appended is written and the error is rethrown; other writes
    /// of the same group are unaffected.
    /// - Throws: what `body` throws; `EventLogError` `.diskFull`, `.readOnly`, `.closed`, `.storage`.
    public func write<Value: Sendable>(_ body: @escaping @Sendable (inout LogWriter) throws -> Value) async throws
        -> Committed<Value>
    {
        guard !configuration.readOnly else { throw EventLogError(.readOnly, "the log was opened read-only") }
        let box = ValueBox<Value>()
        return try await withCheckedThrowingContinuation { continuation in
            let job = WriteJob(
                run: { writer in box.value = try body(&writer) },
                complete: { result in
                    continuation.resume(with: result.map { Committed(value: box.value!, range: $0) })
                })
            enqueue(job)
        }
    }

    /// Appends records as they are, returning their ids once durable. The storage primitive under
    /// the apply path: production writes go through `ChangeApplier`, which decides what to append.
    package func append(_ records: [ChangeRecord]) async throws -> ClosedRange<EntityChangeID>? {
        try await write { writer in
            for record in records { writer.append(record) }
        }.range
    }

    private func enqueue(_ job: WriteJob) {
        let accepted = writer.withLock { s -> Bool in
            guard !s.closed else { return false }
            s.pending.append(job)
            if !s.drainScheduled {
                s.drainScheduled = true
                queue.async { self.drain() }
            }
            return true
        }
        if !accepted { job.complete(.failure(EventLogError(.closed, "the log was closed"))) }
    }

    /// Writer queue: commits everything waiting as one group.
    private func drain() {
        let jobs = writer.withLock { s in
            s.drainScheduled = false
            defer { s.pending = [] }
            return s.pending
        }
        guard !jobs.isEmpty else { return }
        // Backpressure: a full overlay is drained before anyone appends more. If the indexes
        // cannot be written (a full disk), the writes fail rather than the overlay's bound.
        while overlay.withLock({ $0.count }) >= configuration.overlayLimit {
            do {
                try indexBatch()
            } catch {
                logger.error("index batch failed", metadata: ["error": "\(error)"])
                let refusal = EventLogError(
                    (error as? EventLogError)?.code ?? .storage,
                    "\(configuration.overlayLimit) changes wait for the indexes, which cannot be written: \(error); nothing was written"
                )
                for job in jobs { job.complete(.failure(refusal)) }
                return
            }
        }
        commitGroup(jobs)
        // The writers are acknowledged; fold their entries while they prepare the next write.
        let added = overlay.withLock { $0.foldRecent() }
        afterCommit(added: added)
    }

    private func commitGroup(_ jobs: [WriteJob]) {
        var attempt = 0
        while true {
            attempt += 1
            do {
                let results = try commitOnce(jobs)
                for (job, result) in zip(jobs, results) { job.complete(result) }
                return
            } catch let error as LMDBError where error == .mapFull && attempt <= 16 {
                growMap()
            } catch {
                let mapped = (error as? LMDBError).map { EventLogError.storage($0, directory: directory) } ?? error
                logger.error("commit failed", metadata: ["error": "\(mapped)"])
                for job in jobs { job.complete(.failure(mapped)) }
                return
            }
        }
    }

    private func commitOnce(_ jobs: [WriteJob]) throws -> [Result<ClosedRange<EntityChangeID>?, any Error>] {
        let started = monotonicNanos()
        let txn = try WriteTransaction(env)
        let head = try txn.last(changesDB).flatMap { IndexCoding.id(fromKey: $0.key) } ?? .zero
        group.reset(firstId: head.next)
        defer { group.reset(firstId: .zero) }
        var results: [Result<ClosedRange<EntityChangeID>?, any Error>] = []
        for job in jobs {
            let mark = group.mark
            var writer = LogWriter(txn: txn.ref, log: self, group: group)
            do {
                try job.run(&writer)
                results.append(.success(group.range(since: mark)))
            } catch {
                group.rollback(to: mark)
                results.append(.failure(error))
            }
        }
        guard !group.records.isEmpty || !group.meta.isEmpty else {
            txn.abort()
            return results
        }
        var id = group.firstId
        for record in group.records {
            try IndexCoding.idKey(id).withUnsafeBytes { key in
                try txn.putReserved(changesDB, key, size: RecordCodec.encodedSize(record), .append) { out in
                    RecordCodec.encode(record, into: out)
                }
            }
            id = id.next
        }
        for (name, value) in group.meta {
            try (MetaKey.userPrefix + name).withBytes { k in try value.withUnsafeBytes { try txn.put(metaDB, k, $0) } }
        }
        try txn.commit()
        if let hook = betweenCommitAndPublish.withLock({ $0 }) { hook() }
        let newHead = EntityChangeID(group.nextId.rawValue - 1)
        if !group.records.isEmpty {
            let layer = IndexOverlay.RecentLayer(
                current: group.current, changeIds: group.changeIds, firstId: group.firstId,
                items: group.records.map { ($0.change.key, $0.change.changeId) })
            overlay.withLock { $0.recent = layer }
            notifier.publish(newHead)
            appendedCounter.increment(by: group.records.count)
            commitTimer.recordNanoseconds(Int64(monotonicNanos() - started))
        }
        return results
    }

    private func growMap() {
        let current = env.mapSize
        let next = current < 8 << 30 ? current * 2 : current + (8 << 30)
        logger.info("growing the log's map", metadata: ["log.map.from": "\(current)", "log.map.to": "\(next)"])
        do {
            try env.resize(to: next)
        } catch {
            logger.error("map resize failed", metadata: ["error": "\(error)"])
        }
    }

    /// Grows the map now if it is more than half full. A resize waits for every read transaction
    /// of this process and holds up new ones meanwhile (the gate prefers the writer), so one
    /// falling due during a long read — `verify`, a content-hash check's scan of `current` — would
    /// stall every read and write of the node until that read ended.
    func makeRoomBeforeALongRead() {
        guard !configuration.readOnly else { return }
        let (used, size) = env.usage
        if used > size / 2 { growMap() }
    }

    /// Writes a copy of the log into `directory` (created if missing; it must not hold a log) as
    /// of one snapshot: every change committed before the call, perhaps some after, and the
    /// index entries and checkpoints of that instant. The copy is compacted and on disk when this
    /// returns. Works on a log opened read-only while another process writes it.
    public func copy(to directory: String) throws {
        makeRoomBeforeALongRead()
        try makeDirectories(directory)
        do {
            try env.copy(to: directory)
        } catch {
            throw EventLogError.storage(error, directory: directory)
        }
        // LMDB writes the copy without syncing it.
        try syncToDisk(directory + "/data.mdb")
        try syncToDisk(directory)
    }

    /// Bytes of the map in use, and its size.
    package var mapUsage: (used: Int, size: Int) { env.usage }

    /// Group commits performed since open (each one transaction and one fsync).
    package var commitCount: Int { writer.withLock { $0.commits } }

    // MARK: - Indexing

    /// Writer queue: after a commit that added `added` changes, index a step now if the overlay
    /// is half full, else once idle.
    ///
    /// Past half the bound every commit indexes a step, at least twice what it added so the
    /// overlay shrinks: a steady writer pays a short pause per commit instead of the half-second
    /// stall of a full batch every hundred commits.
    private func afterCommit(added: Int) {
        let count = overlay.withLock { $0.count }
        unindexedGauge.record(Double(count))
        let now = monotonicNanos()
        let scheduleTimer = writer.withLock { s -> Bool in
            s.lastCommitNanos = now
            s.commits += 1
            guard count > 0, !s.idleTimerScheduled else { return false }
            s.idleTimerScheduled = true
            return true
        }
        if count >= configuration.overlayLimit / 2 {
            do { try indexBatch(limit: max(configuration.stepIndexBatchSize, 2 * added)) } catch {
                logger.error("index batch failed", metadata: ["error": "\(error)"])
            }
        }
        if scheduleTimer { scheduleIdleIndexing(after: configuration.indexIdleDelay) }
    }

    private func scheduleIdleIndexing(after delay: Duration) {
        let nanos = Int(delay.components.seconds * 1_000_000_000 + delay.components.attoseconds / 1_000_000_000)
        queue.asyncAfter(deadline: .now() + .nanoseconds(nanos)) { self.idleIndexing() }
    }

    /// Writer queue: one index batch if nothing was committed for the idle delay.
    private func idleIndexing() {
        let delay = configuration.indexIdleDelay
        let delayNanos =
            UInt64(delay.components.seconds) * 1_000_000_000
            + UInt64(delay.components.attoseconds / 1_000_000_000)
        let (closed, last, busy) = writer.withLock { ($0.closed, $0.lastCommitNanos, !$0.pending.isEmpty) }
        guard !closed else { return }
        let idleFor = monotonicNanos() - last
        if busy || idleFor < delayNanos {
            scheduleIdleIndexing(after: .nanoseconds(Int64(delayNanos - min(idleFor, delayNanos)) + 1_000_000))
            return
        }
        do {
            try indexBatch(limit: configuration.stepIndexBatchSize)
            writer.withLock { $0.indexFailures = 0 }
        } catch {
            let failures = writer.withLock { s in
                s.indexFailures += 1
                return s.indexFailures
            }
            logger.error("index batch failed", metadata: ["error": "\(error)", "log.index.failures": "\(failures)"])
            // Again after 0.2 s, doubling to a minute: not a spin of failures on a full disk.
            scheduleIdleIndexing(after: .milliseconds(100 << min(failures, 9)))
            return
        }
        if overlay.withLock({ $0.count }) > 0 {
            // Continue right away; writes that arrived meanwhile are queued ahead of this.
            queue.async { self.idleIndexing() }
        } else {
            writer.withLock { $0.idleTimerScheduled = false }
        }
    }

    /// Writer queue: moves the oldest overlay entries into `current` and `changeIds`, sorted, in
    /// one transaction with the new index checkpoint.
    func indexBatch(limit: Int? = nil) throws {
        if let fault = indexFault.withLock({ $0 }), let error = fault() { throw error }
        let started = monotonicNanos()
        let (items, entries) = overlay.withLock { o in
            let items = Array(o.oldest(limit ?? configuration.indexBatchSize))
            var entries: [(EntityKey, CurrentEntry)] = []
            entries.reserveCapacity(items.count)
            for item in items {
                if let entry = o.current[item.key] { entries.append((item.key, entry)) }
            }
            return (items, entries)
        }
        guard let target = items.last?.id else { return }
        // Puts in key order touch each B-tree page once. Ids are ASCII, so String order is the
        // keys' byte order, and sorting the (mostly inline) Strings allocates nothing. An entity
        // changed twice in the batch is listed twice with its latest entry, and put once.
        var currentPuts = entries
        currentPuts.sort { ($0.0.name.code, $0.0.id) < ($1.0.name.code, $1.0.id) }
        var changeIdPuts = items.map { ($0.changeId, $0.id) }
        changeIdPuts.sort { $0.0 < $1.0 }
        var attempt = 0
        while true {
            attempt += 1
            do {
                let txn = try WriteTransaction(env)
                var previous: EntityKey?
                for (key, entry) in currentPuts where key != previous {
                    previous = key
                    try IndexCoding.currentKey(key).withUnsafeBytes { k in
                        try IndexCoding.currentValue(entry).withUnsafeBytes { try txn.put(currentDB, k, $0) }
                    }
                }
                for (changeId, id) in changeIdPuts {
                    var changeId = changeId
                    try changeId.withUTF8 { k in
                        try withUnsafeBytes(of: id.rawValue.bigEndian) {
                            try txn.put(changeIdsDB, UnsafeRawBufferPointer(k), $0)
                        }
                    }
                }
                try MetaKey.indexCheckpoint.withBytes { k in
                    try IndexCoding.idKey(target).withUnsafeBytes { try txn.put(metaDB, k, $0) }
                }
                try txn.commit()
                break
            } catch {
                if let lmdb = error as? LMDBError, lmdb == .mapFull, attempt <= 16 {
                    growMap()
                    continue
                }
                throw (error as? LMDBError).map { EventLogError.storage($0, directory: directory) } ?? error
            }
        }
        let unindexed = overlay.withLock { o in
            o.drop(through: target, count: items.count)
            return o.count
        }
        unindexedGauge.record(Double(unindexed))
        logger.debug(
            "indexed changes",
            metadata: [
                "log.index.checkpoint": "\(target)", "log.index.batch": "\(items.count)",
                "log.index.ms": "\((monotonicNanos() - started) / 1_000_000)",
            ])
    }

    /// Returns once the on-disk indexes reach the head at the time of the call.
    public func flushIndex() async throws {
        guard !configuration.readOnly else { return }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            queue.async {
                do {
                    while self.overlay.withLock({ $0.count }) > 0 { try self.indexBatch() }
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    // MARK: - Tails

    /// Returns once the head is past `id`.
    ///
    /// - Throws: `CancellationError`, or `EventLogError.closed` when the log closes.
    public func waitForHead(beyond id: EntityChangeID) async throws {
        try await notifier.wait(beyond: id)
    }

    /// Calls `observer` with the new head after each commit, on the committing thread; it must
    /// return at once (wake something, never block). Returns a token for `stopObserving`.
    public func observeCommits(_ observer: @escaping @Sendable (EntityChangeID) -> Void) -> Int {
        notifier.observe(observer)
    }

    public func stopObserving(_ token: Int) { notifier.stopObserving(token) }

    /// Pages of changes after `id`: first what the log holds, then each new commit as it happens.
    public func tail(after id: EntityChangeID, pageSize: Int = 1000) -> ChangeTail {
        ChangeTail(log: self, cursor: id, pageSize: pageSize)
    }

    // MARK: - Closing

    /// Finishes queued writes, then closes the environment and releases the directory.
    public func close() {
        let wasOpen = writer.withLock { s -> Bool in
            defer { s.closed = true }
            return !s.closed
        }
        guard wasOpen else { return }
        queue.sync {}
        notifier.close()
        env.close()
        lock.release()
    }
}

/// A write's result, handed from the writer queue to the waiting caller.
private final class ValueBox<Value>: @unchecked Sendable {
    var value: Value?
}

/// Pages of changes from a cursor, waking on each commit. The log is the buffer: nothing is
/// queued per reader, so a slow reader only lags.
public struct ChangeTail: AsyncSequence, Sendable {
    public typealias Element = [LoggedChange]
    let log: EntityChangeLog
    let cursor: EntityChangeID
    let pageSize: Int

    public struct AsyncIterator: AsyncIteratorProtocol {
        let log: EntityChangeLog
        var cursor: EntityChangeID
        let pageSize: Int

        public mutating func next() async throws -> [LoggedChange]? {
            while true {
                try Task.checkCancellation()
                let page = try log.changes(after: cursor, limit: pageSize)
                if let last = page.last {
                    cursor = last.id
                    return page
                }
                do {
                    try await log.waitForHead(beyond: cursor)
                } catch let error as EventLogError where error.code == .closed {
                    return nil
                }
            }
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(log: log, cursor: cursor, pageSize: pageSize)
    }
}

extension String {
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var copy = self
        return try copy.withUTF8 { try body(UnsafeRawBufferPointer($0)) }
    }
}

func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
