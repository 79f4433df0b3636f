import AsyncHTTPClient
import Crypto
import Dispatch
public import EventLog
import Foundation
public import Logging
import Metrics
import NIOCore
import NIOHTTP1
public import ServiceLifecycle
import Synchronization
public import TributaryCore

/// Syncs this node to a peer: the thin I/O shell around `SyncSession`. One cycle at a time (the
/// sync mutex); failures retry with capped exponential backoff and jitter; a permanent failure
/// (wrong secret, version mismatch, a refused change, damage to this node's log) waits for the
/// next interval instead of retrying.
public final class SyncEngine: Service, Sendable {
    public let peer: SyncPeer
    let log: EntityChangeLog
    let applier: ChangeApplier
    let server: SyncServer
    let client: HTTPClient
    let interval: Duration
    let retryCap: Duration
    let logger: Logger
    private let state: Mutex<State>
    /// Called with Trilium's WebSocket status names (`sync-pull-in-progress`, …) as a cycle runs.
    private let onStatus: @Sendable (String, EntityChangeID) -> Void
    /// The peer's cursors, last success and last failure as metrics, labelled with its URL.
    private let gauges: (push: Gauge, pull: Gauge, lastSuccess: Gauge, lastFailure: Gauge)
    private let counters: (pushed: Counter, pulled: Counter)

    /// What `/api/status` shows about the peer.
    public struct PeerStatus: Sendable {
        public var url: String
        public var lastSyncedPush: EntityChangeID
        public var lastSyncedPull: EntityChangeID
        public var lastSuccess: UTCDateTime?
        public var lastError: String?
        public var pushed = 0
        public var pulled = 0
        public var cycles = 0
        public var running = false
        /// What the peer said was left to pull at the last page (Trilium's `/api/sync/stats`).
        public var outstandingPullCount = 0
        /// Whether the peer serves full history, as it answered at the last login (nil: not asked).
        public var fullHistory: Bool?
    }

    /// The result of a cycle.
    public struct Outcome: Sendable {
        public var failure: SyncFailure?
        public var pushed = 0
        public var pulled = 0
        public var rounds = 0
        /// Succeeded with newer changes already waiting on one side (see `SyncSession.endedBehind`).
        public var behind = false
        public var succeeded: Bool { failure == nil }
    }

    private struct State {
        var status: PeerStatus
        var running = false
        var waiters: [CheckedContinuation<Outcome?, Never>] = []
    }

    public init(
        peer: SyncPeer, log: EntityChangeLog, applier: ChangeApplier, interval: Duration = .seconds(60),
        retryCap: Duration = .seconds(60), digests: SectorDigests = SectorDigests(), logger: Logger,
        onStatus: @escaping @Sendable (String, EntityChangeID) -> Void = { _, _ in }
    ) throws {
        self.peer = peer
        self.log = log
        self.applier = applier
        server = SyncServer(log: log, applier: applier, digests: digests)
        self.interval = interval
        self.retryCap = retryCap
        self.logger = logger
        self.onStatus = onStatus
        var configuration = HTTPClient.Configuration()
        // The client retries a refused connection until the connect timeout: keep it short so a
        // peer that is down fails the cycle quickly and the backoff decides when to try again.
        configuration.timeout = .init(connect: .seconds(2), read: .seconds(120))
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let push = try log.checkpoint(peer.pushCheckpoint).flatMap(Self.decode) ?? .zero
        let pull = try log.checkpoint(peer.pullCheckpoint).flatMap(Self.decode) ?? .zero
        state = Mutex(State(status: PeerStatus(url: peer.url, lastSyncedPush: push, lastSyncedPull: pull)))
        let dimensions = [("peer", peer.url)]
        gauges = (
            Gauge(label: "tributary_sync_last_synced_push", dimensions: dimensions),
            Gauge(label: "tributary_sync_last_synced_pull", dimensions: dimensions),
            Gauge(label: "tributary_sync_last_success_timestamp_seconds", dimensions: dimensions),
            Gauge(label: "tributary_sync_last_failure_timestamp_seconds", dimensions: dimensions)
        )
        counters = (
            Counter(label: "tributary_sync_pushed_changes_total", dimensions: dimensions),
            Counter(label: "tributary_sync_pulled_changes_total", dimensions: dimensions)
        )
        gauges.push.record(Double(push.rawValue))
        gauges.pull.record(Double(pull.rawValue))
    }

    static func decode(_ bytes: [UInt8]) -> EntityChangeID? {
        UInt64(String(decoding: bytes, as: UTF8.self)).map { EntityChangeID($0) }
    }
    static func encode(_ id: EntityChangeID) -> [UInt8] { Array(String(id.rawValue).utf8) }

    public var status: PeerStatus { state.withLock { $0.status } }

    /// Runs one cycle; if one is already running, waits for it and returns its outcome.
    public func syncOnce() async -> Outcome {
        if let joined = await takeMutex(forCycle: true) { return joined }
        let outcome = await cycle()
        releaseMutex(sharing: outcome) { s in
            s.status.cycles += 1
            s.status.pushed += outcome.pushed
            s.status.pulled += outcome.pulled
            if let failure = outcome.failure {
                s.status.lastError = failure.message
                gauges.lastFailure.record(Date().timeIntervalSince1970)
            } else {
                s.status.lastSuccess = .now()
                s.status.lastError = nil
                gauges.lastSuccess.record(Date().timeIntervalSince1970)
            }
        }
        Counter(
            label: "tributary_sync_cycles_total",
            dimensions: [("peer", peer.url), ("result", outcome.succeeded ? "converged" : "failed")]
        )
        .increment()
        return outcome
    }

    /// Runs `body` holding the sync mutex, as a cycle does: it waits for a running cycle to end,
    /// and cycles triggered meanwhile wait for it (then run). For work that must not overlap a
    /// sync, such as rebuilding the views.
    public func exclusively<R: Sendable>(_ body: () async throws -> R) async throws -> R {
        _ = await takeMutex(forCycle: false)
        // No outcome to share: waiting triggers run cycles of their own.
        defer { releaseMutex(sharing: nil) { _ in } }
        return try await body()
    }

    /// Takes the sync mutex, waiting while someone holds it; nil once taken. A cycle that waited
    /// for another cycle returns that one's outcome instead of running its own.
    private func takeMutex(forCycle: Bool) async -> Outcome? {
        while true {
            let taken = state.withLock { s -> Bool in
                guard !s.running else { return false }
                s.running = true
                s.status.running = forCycle
                return true
            }
            if taken { return nil }
            let joined: Outcome? = await withCheckedContinuation { continuation in
                let ended = state.withLock { s -> Bool in
                    guard s.running else { return true }
                    s.waiters.append(continuation)
                    return false
                }
                if ended { continuation.resume(returning: nil) }  // it ended meanwhile: try again
            }
            if forCycle, let joined { return joined }
        }
    }

    /// Releases the sync mutex after `update` (under the same lock), handing `outcome` to whoever
    /// waited (nil: they take the mutex in turn).
    private func releaseMutex(sharing outcome: Outcome?, _ update: (inout State) -> Void) {
        let waiters = state.withLock { s -> [CheckedContinuation<Outcome?, Never>] in
            s.running = false
            s.status.running = false
            update(&s)
            defer { s.waiters = [] }
            return s.waiters
        }
        for waiter in waiters { waiter.resume(returning: outcome) }
    }

    /// Runs one cycle unless one is running (`nil`): the CLI's "already running".
    public func trySyncOnce() async -> Outcome? {
        guard state.withLock({ !$0.running }) else { return nil }
        return await syncOnce()
    }

    /// Every interval and soon after local writes; retries failures with backoff.
    public func run() async throws {
        var backoff = Backoff(cap: retryCap, jitter: 0.75...1.25)
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let outcome = await syncOnce()
            let delay: Duration
            if let failure = outcome.failure, !failure.isPermanent {
                delay = min(backoff.next(), interval)
                logger.warning(
                    "sync failed; retrying",
                    metadata: ["sync.peer": "\(peer.url)", "sync.retryIn": "\(delay)", "error": "\(failure)"])
            } else {
                backoff.reset()
                delay = interval
                if let failure = outcome.failure {
                    logger.error(
                        "sync failed; not retrying before the next interval",
                        metadata: ["sync.peer": "\(peer.url)", "error": "\(failure)"])
                }
            }
            let seen = log.head
            // Writes wake the engine only after a cycle that worked: after a failure the delay is
            // the backoff's (or, for a wrong secret or version, the interval's), whatever is written.
            let wakeOnWrite = outcome.failure == nil
            do {
                try await cancelWhenGracefulShutdown {
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask { try await Task.sleep(for: delay) }
                        if wakeOnWrite {
                            group.addTask {
                                try await self.log.waitForHead(beyond: seen)
                                try await self.writesPause()
                            }
                        }
                        try await group.next()
                        group.cancelAll()
                    }
                }
            } catch is CancellationError {
                return
            } catch let error as EventLogError where error.code == .closed {
                return
            }
            if Task.isShuttingDownGracefully { return }
        }
    }

    /// Writes wake the engine once they pause this long (a batch of edits syncs once)…
    static let writeQuiet: Duration = .milliseconds(300)
    /// …or after this long under writes that never pause.
    static let writeMaxWait: Duration = .seconds(3)

    /// Returns once the log has not grown for `writeQuiet`, or after `writeMaxWait`.
    private func writesPause() async throws {
        let deadline = ContinuousClock.now + Self.writeMaxWait
        var last = log.head
        while ContinuousClock.now < deadline {
            try await Task.sleep(for: Self.writeQuiet)
            let head = log.head
            if head == last { return }
            last = head
        }
    }

    /// Releases the HTTP client; call once, after the last cycle.
    public func close() {
        let done = DispatchSemaphore(value: 0)
        // Called back on a queue of its own: on Linux `.global()` runs on the cooperative pool's
        // threads, the ones this wait may be holding.
        client.shutdown(queue: DispatchQueue(label: "tributary.sync.shutdown")) { _ in done.signal() }
        done.wait()
    }

    // MARK: - One cycle

    private func cycle() async -> Outcome {
        let start = state.withLock { $0.status }
        var session = SyncSession(
            localInstanceId: log.instanceId, syncVersion: peer.syncVersion, lastSyncedPush: start.lastSyncedPush,
            lastSyncedPull: start.lastSyncedPull)
        var cookie: String?
        var action = session.start()
        var outcome = Outcome()
        // Full history only when the peer said at login that it serves it: a plain Trilium
        // server ignores the request, and would be pushed every old version for nothing.
        var fullHistory = false
        var prefetch: Prefetch?
        defer { prefetch?.task.cancel() }
        while true {
            let event: SyncEvent
            do {
                switch action {
                case .getStatus:
                    let object = try await request(.GET, "/api/setup/status", cookie: nil)
                    event = .status(syncVersion: object?["syncVersion"]?.intValue ?? -1)
                case .login:
                    (cookie, event, fullHistory) = try await login()
                    state.withLock { [fullHistory] s in s.status.fullHistory = peer.fullHistory ? fullHistory : nil }
                case .push(let after):
                    event = try await push(
                        after: after, peerInstanceId: session.peerInstanceId, cookie: cookie, fullHistory: fullHistory)
                case .pull(let after):
                    event = try await pull(
                        after: after, peerInstanceId: session.peerInstanceId!, cookie: cookie, fullHistory: fullHistory,
                        lastSyncedPush: session.lastSyncedPush, prefetch: &prefetch)
                case .finish:
                    _ = try await request(.POST, "/api/sync/finished", cookie: cookie)
                    event = .finished
                case .check:
                    event = try await check(session, cookie: cookie)
                case .requeue(let sectors):
                    _ = try await request(.POST, "/api/sync/check-entity-changes", cookie: cookie)
                    for sector in sectors {
                        _ = try await server.queueSector(sector.entityName, sector: sector.sector)
                        _ = try await request(
                            .POST, "/api/sync/queue-sector/\(sector.entityName.rawValue)/\(sector.sector)",
                            cookie: cookie)
                    }
                    onStatus("sync-hash-check-failed", session.lastSyncedPush)
                    event = .requeued
                case .done:
                    outcome.pushed = session.pushedCount
                    outcome.pulled = session.pulledCount
                    outcome.rounds = session.round
                    outcome.behind = session.endedBehind
                    onStatus("sync-finished", session.lastSyncedPush)
                    return outcome
                case .fail(let failure):
                    outcome.failure = failure
                    outcome.pushed = session.pushedCount
                    outcome.pulled = session.pulledCount
                    outcome.rounds = session.round
                    onStatus("sync-failed", session.lastSyncedPush)
                    return outcome
                }
            } catch let failure as SyncFailure {
                event = .failed(failure)
            } catch let error as EventLogError {
                event = .failed(SyncFailure(localLog: error))
            } catch {
                event = .failed(SyncFailure("\(peer.url): \(error)", isPermanent: false))
            }
            action = session.received(event)
            let cursors = (session.lastSyncedPush, session.lastSyncedPull)
            state.withLock { s in
                s.status.lastSyncedPush = cursors.0
                s.status.lastSyncedPull = cursors.1
            }
            gauges.push.record(Double(cursors.0.rawValue))
            gauges.pull.record(Double(cursors.1.rawValue))
        }
    }

    /// Logs in; also returns whether the peer serves full history (asked only when configured).
    private func login() async throws -> (String?, SyncEvent, fullHistory: Bool) {
        let timestamp = UTCDateTime.now().description
        let hash = Data(
            HMAC<SHA256>.authenticationCode(
                for: Data(timestamp.utf8), using: SymmetricKey(data: Data(peer.documentSecret.utf8)))
        ).base64EncodedString()
        let body: JSONValue = .object([
            "timestamp": .string(timestamp), "syncVersion": .number(peer.syncVersion), "hash": .string(hash),
        ])
        var request = HTTPClientRequest(url: peer.url + "/api/login/sync")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        if peer.fullHistory { request.headers.add(name: SyncPeer.historyHeader, value: "full") }
        request.body = .bytes(ByteBuffer(bytes: body.jsonBytes))
        let response = try await client.execute(request, timeout: .seconds(120))
        let answer = try await response.body.collect(upTo: 1 << 20)
        guard response.status.code == 200 else {
            let message =
                (try? JSONParser.parseObject(Array(answer.readableBytesView)))?["message"]?.stringValue
                ?? String(buffer: answer)
            // Wrong secret, clock or version: retrying cannot help.
            throw SyncFailure(
                "login to \(peer.url) failed (\(response.status.code)): \(message)",
                isPermanent: response.status.code < 500)
        }
        let object = try JSONParser.parseObject(Array(answer.readableBytesView))
        guard case .string(let instanceId)? = object["instanceId"], let max = object["maxEntityChangeId"]?.intValue
        else {
            throw SyncFailure("login to \(peer.url): unexpected answer", isPermanent: false)
        }
        let cookie = response.headers.first(name: "set-cookie")
        let fullHistory = peer.fullHistory && response.headers.first(name: SyncPeer.historyHeader) == "full"
        if peer.fullHistory && !fullHistory {
            logger.warning(
                "the peer does not serve full history (not a Tributary node?); syncing each entity's latest change only",
                metadata: ["sync.peer": "\(peer.url)"])
        }
        return (
            cookie, .loggedIn(instanceId: instanceId, maxEntityChangeId: EntityChangeID(UInt64(max))), fullHistory
        )
    }

    private func push(after: EntityChangeID, peerInstanceId: String?, cookie: String?, fullHistory: Bool)
        async throws -> SyncEvent
    {
        let page = try server.changed(after: after, excludingInstance: peerInstanceId, compacted: !fullHistory)
        if !page.changes.isEmpty {
            var w = JSONWriter(capacity: 4096 + page.changes.count * 800)
            w.raw("{\"entities\":")
            w.writeRecords(page.changes)
            w.raw(",\"instanceId\":")
            w.string(log.instanceId)
            w.raw("}")
            _ = try await request(
                .PUT, "/api/sync/update?logMarkerId=\(RandomID.make(length: 10))", cookie: cookie, body: w.bytes,
                headers: [("pageCount", "1"), ("pageIndex", "0"), ("requestId", "n/a")])
            onStatus("sync-push-in-progress", page.lastEntityChangeId)
        }
        if page.lastEntityChangeId > after {
            let checkpoint = (peer.pushCheckpoint, Self.encode(page.lastEntityChangeId))
            _ = try await log.write { writer in writer.setCheckpoint(checkpoint.0, checkpoint.1) }
        }
        counters.pushed.increment(by: page.changes.count)
        return .pushed(count: page.changes.count, through: page.lastEntityChangeId)
    }

    /// The next page, requested while the previous one is applied: the peer reads and sends it
    /// while this node validates and commits, instead of each side waiting for the other.
    private struct Prefetch {
        let after: EntityChangeID
        let task: Task<SyncPullPage, any Error>
    }

    private func fetchPage(after: EntityChangeID, cookie: String?, fullHistory: Bool) async throws -> SyncPullPage {
        var headers: [(String, String)] = []
        if fullHistory { headers.append((SyncPeer.historyHeader, "full")) }
        let body = try await requestBytes(
            .GET,
            "/api/sync/changed?instanceId=\(log.instanceId)&lastEntityChangeId=\(after.rawValue)&logMarkerId=\(RandomID.make(length: 10))",
            cookie: cookie, headers: headers)
        do {
            return try SyncPullPage(json: body)
        } catch {
            throw SyncFailure("\(peer.url) sent a bad page of changes: \(error)", isPermanent: false)
        }
    }

    private func pull(
        after: EntityChangeID, peerInstanceId: String, cookie: String?, fullHistory: Bool,
        lastSyncedPush: EntityChangeID, prefetch: inout Prefetch?
    ) async throws -> SyncEvent {
        let page: SyncPullPage
        if let ahead = prefetch, ahead.after == after {
            prefetch = nil
            page = try await ahead.task.value
        } else {
            prefetch?.task.cancel()
            prefetch = nil
            page = try await fetchPage(after: after, cookie: cookie, fullHistory: fullHistory)
        }
        state.withLock { $0.status.outstandingPullCount = page.outstandingPullCount }
        if page.lastEntityChangeId > after, !page.records.isEmpty {
            let next = page.lastEntityChangeId
            prefetch = Prefetch(
                after: next,
                task: Task { try await self.fetchPage(after: next, cookie: cookie, fullHistory: fullHistory) })
        }
        let records = page.records
        guard records.isEmpty || page.lastEntityChangeId > after else {
            // Asking again would get the same page again, forever.
            throw SyncFailure(
                "\(peer.url) sent changes with a cursor (\(page.lastEntityChangeId)) not past the one asked for (\(after))",
                isPermanent: false)
        }
        let through = max(after, page.lastEntityChangeId)
        // The cursor commits in the same transaction as the changes it covers.
        do {
            let report = try await applier.applyRemote(
                records, from: .peer(instanceId: peerInstanceId),
                checkpoint: (peer.pullCheckpoint, Self.encode(through)))
            // Trilium announces a pull once a batch applies a change, not for every request.
            if report.applied > 0 { onStatus("sync-pull-in-progress", lastSyncedPush) }
        } catch let error as ApplyError {
            // The same page would be refused at every retry: say which change, and wait for the
            // next interval instead of retrying at once.
            let change = records[error.index].change
            let hint = error.cause.code == .tooLarge ? " (--max-entity-mib raises the limit)" : ""
            throw SyncFailure(
                "\(peer.url) sent a change this node refuses (\(change.entityName.rawValue) \(change.entityId), changeId \(change.changeId)): \(error.cause)\(hint); pulling stops there",
                isPermanent: true)
        }
        counters.pulled.increment(by: records.count)
        return .pulled(count: records.count, through: through)
    }

    private func check(_ session: SyncSession, cookie: String?) async throws -> SyncEvent {
        // This side hashes while the peer hashes its own: on a large document each takes
        // seconds (two of a million-change catch-up's twenty), and neither needs the other's.
        let server = self.server
        async let computed = server.entityHashes()
        guard let object = try await request(.GET, "/api/sync/check", cookie: cookie),
            case .object(let remote)? = object["entityHashes"], let max = object["maxEntityChangeId"]?.intValue
        else { throw SyncFailure("\(peer.url): unexpected answer to /api/sync/check", isPermanent: false) }
        let local = try await computed
        var mismatched: [SectorID] = []
        // Both sides' names and sectors: a name only the peer has is a difference too (§7 item 5).
        var names = Set(local.keys)
        for member in remote.members { if let name = EntityName(rawValue: member.key) { names.insert(name) } }
        for name in names {
            let mine = local[name] ?? [:]
            let theirs = remote[name.rawValue]?.objectValue ?? [:]
            let sectors = Set(mine.keys).union(theirs.members.map(\.key))
            for sector in sectors where mine[sector] != theirs[sector]?.stringValue {
                mismatched.append(SectorID(name, sector))
            }
        }
        let unpushed = try !server.changed(
            after: session.lastSyncedPush, excludingInstance: session.peerInstanceId, maxChanges: 1
        )
        .changes.isEmpty
        return .checked(
            mismatched: mismatched, peerMaxEntityChangeId: EntityChangeID(UInt64(max)), hasUnpushed: unpushed)
    }

    // MARK: - HTTP

    private func request(
        _ method: HTTPMethod, _ path: String, cookie: String?, body: [UInt8]? = nil, headers: [(String, String)] = []
    ) async throws -> JSONObject? {
        try await requestRaw(method, path, cookie: cookie, body: body, headers: headers).0
    }

    private func requestRaw(
        _ method: HTTPMethod, _ path: String, cookie: String?, body: [UInt8]? = nil, headers: [(String, String)] = []
    ) async throws -> (JSONObject?, Int) {
        let bytes = try await requestBytes(method, path, cookie: cookie, body: body, headers: headers)
        if bytes.isEmpty { return (nil, 0) }
        return (try JSONParser.parseObject(bytes), bytes.count)
    }

    /// Trilium's client conventions (§3.3): the session cookie echoed, 2xx is success, an empty
    /// body is null; anything else fails with the peer's message.
    private func requestBytes(
        _ method: HTTPMethod, _ path: String, cookie: String?, body: [UInt8]? = nil, headers: [(String, String)] = []
    ) async throws -> [UInt8] {
        var request = HTTPClientRequest(url: peer.url + path)
        request.method = method
        if let cookie { request.headers.add(name: "Cookie", value: cookie) }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let response = try await client.execute(request, timeout: .seconds(120))
        let answer = try await response.body.collect(upTo: 512 << 20)
        let bytes = Array(answer.readableBytesView)
        guard (200..<300).contains(Int(response.status.code)) else {
            let message =
                (try? JSONParser.parseObject(bytes))?["message"]?.stringValue
                ?? String(decoding: bytes.prefix(100), as: UTF8.self)
            throw SyncFailure(
                "Request to \(method) \(peer.url)\(path.split(separator: "?").first ?? "") failed, error: \(response.status.code) \(message)",
                isPermanent: false)
        }
        return bytes
    }
}

extension SyncFailure {
    /// A failure of this node's own log, named as this node's rather than the peer's. Damage
    /// stays until an operator repairs it (the message says how), so retrying before the next
    /// interval would only repeat the error; a full disk or an I/O error may pass, and is retried.
    init(localLog error: EventLogError) {
        let lasting: Set<EventLogError.Code> = [.corruptRecord, .corruptIndex, .readOnly, .unsupportedFormat]
        self.init("this node's log: \(error)", isPermanent: lasting.contains(error.code))
    }
}
