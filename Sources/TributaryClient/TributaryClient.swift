import AsyncAlgorithms
import AsyncHTTPClient
import Foundation
import HummingbirdWSClient
public import Logging
import NIOCore
import Synchronization
public import TributaryCore

/// What a followed stream delivers.
public enum TailEvent: Sendable {
    /// A change, in id order, each exactly once.
    case change(LoggedChange)
    /// Replay reached the head (then live changes follow).
    case caughtUp(EntityChangeID)
    /// The subscriber lagged; the server serves it from the log again.
    case fellBehind(EntityChangeID)
    /// Any other server message (`sync-finished`, `reload-frontend`, `toast`, …), parsed.
    case status(type: String, message: JSONObject)
}

/// The error of the client: a refused request or a lost stream, with what to do.
public struct ClientError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// A client of one node.
public final class TributaryClient: Sendable {
    public let url: String
    let apiToken: String
    let logger: Logger
    let http: HTTPClient
    private let state = Mutex(State())

    private struct State {
        var maxKnown: EntityChangeID = .zero
        var processed: EntityChangeID = .zero
        var cache: [EntityKey: EntityRow] = [:]
    }

    private let waiters = IdWaiters()

    /// - Parameter url: the node's base URL, e.g. `http://127.0.0.1:8080`.
    public init(url: String, apiToken: String, logger: Logger = Logger(label: "tributary.client")) {
        var url = url
        while url.hasSuffix("/") { url.removeLast() }
        self.url = url
        self.apiToken = apiToken
        self.logger = logger
        http = HTTPClient(eventLoopGroupProvider: .singleton)
    }

    /// Releases the HTTP client.
    public func close() async { try? await http.shutdown() }

    deinit {
        // A client dropped without `close()` (an early return, a thrown error) must not stop the
        // caller's process: AsyncHTTPClient traps on a client released while it runs. The
        // shutdown keeps the HTTP client alive until it is done; after `close()` it is a no-op.
        http.shutdown(queue: DispatchQueue(label: "tributary.client.shutdown")) { _ in }
    }

    // MARK: - Writing

    /// Writes a batch (`[{"entityName","entityId","entity"}]` or erasures, see docs/api.md) and
    /// returns the ids assigned (nil when nothing was appended). Remembers the node's head from
    /// the answer, for `waitFor()`.
    public func write(_ batch: [JSONValue]) async throws -> ClosedRange<EntityChangeID>? {
        var request = HTTPClientRequest(url: url + "/api/changes")
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(apiToken)")
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: JSONValue.array(batch).jsonBytes))
        let response = try await http.execute(request, timeout: .seconds(60))
        let body = Array(try await response.body.collect(upTo: 1 << 20).readableBytesView)
        if let head = response.headers.first(name: "trilium-max-entity-change-id").flatMap({ UInt64($0) }) {
            state.withLock { $0.maxKnown = max($0.maxKnown, EntityChangeID(head)) }
        }
        let object = try? JSONParser.parseObject(body)
        guard response.status.code == 200, let object else {
            throw ClientError(
                message:
                    "write refused (\(response.status.code)): \(object?["message"]?.stringValue ?? String(decoding: body.prefix(200), as: UTF8.self))"
            )
        }
        guard let first = object["firstId"]?.intValue, let last = object["lastId"]?.intValue else { return nil }
        return EntityChangeID(UInt64(first))...EntityChangeID(UInt64(last))
    }

    // MARK: - Following

    /// The followed stream (see `follow`) as an `AsyncSequence`: what the node has after `after`,
    /// then each new change, every change once and in order across reconnects.
    ///
    /// The stream reads from the node only as fast as it is iterated, so a slow reader holds one
    /// message, never a backlog. Ending the iteration (or cancelling its task) closes the
    /// connection. A refused token ends the iteration with a `ClientError`.
    public func subscribe(after: EntityChangeID = .zero, fullRows: Bool = false) -> TailStream {
        TailStream(client: self, after: after, fullRows: fullRows)
    }

    /// Follows the log from after `after`: replays what the node has, then each new change.
    /// Reconnects with capped backoff after a lost connection and resumes after the last change
    /// delivered, so `onEvent` sees every change exactly once, in order. Returns when `onEvent`
    /// returns false or the task is cancelled; throws what `onEvent` throws (a change it failed
    /// on is not counted as delivered, so following again from the last one delivered resumes
    /// with it).
    ///
    /// - Parameter fullRows: every change with its row; by default changes carry what Trilium's
    ///   `frontend-update` carries (no row for blobs and etapi_tokens, `noteId` for revisions).
    public func follow(
        after: EntityChangeID = .zero, fullRows: Bool = false,
        _ onEvent: @escaping @Sendable (TailEvent) async throws -> Bool
    ) async throws {
        let delivered = Mutex(after)
        let stop = Mutex(false)
        let failure = Mutex<(any Error)?>(nil)
        let connected = Mutex(false)
        var delay = 0.25
        while !Task.isCancelled {
            let from = delivered.withLock { $0 }
            let base = url.replacingOccurrences(of: "http://", with: "ws://").replacingOccurrences(
                of: "https://", with: "wss://")
            let path = "/ws?after=\(from.rawValue)" + (fullRows ? "&rows=full" : "")
            do {
                var configuration = WebSocketClientConfiguration()
                configuration.maxFrameSize = 64 << 20
                configuration.additionalHeaders = [.authorization: "Bearer \(apiToken)"]
                try await WebSocketClient.connect(
                    url: base + path,
                    configuration: configuration, logger: logger
                ) { inbound, _, _ in
                    for try await message in inbound.messages(maxSize: 64 << 20) {
                        guard case .text(let text) = message else { continue }
                        for event in try self.events(text, after: delivered.withLock { $0 }) {
                            self.absorb(event)
                            let keepGoing: Bool
                            do {
                                keepGoing = try await onEvent(event)
                            } catch {
                                // The caller's failure, not the stream's: no reconnect past it.
                                failure.withLock { $0 = error }
                                return
                            }
                            if case .change(let logged) = event { delivered.withLock { $0 = logged.id } }
                            if !keepGoing {
                                stop.withLock { $0 = true }
                                return
                            }
                        }
                        connected.withLock { $0 = true }
                    }
                }
            } catch is CancellationError {
                return
            } catch let error as WebSocketClientError where error == .webSocketUpgradeFailed {
                // A refused token would be refused again at every retry: stop with the reason.
                if let refusal = await refusal(of: path) { throw refusal }
                logger.debug("stream refused; retrying", metadata: ["error": "\(error)"])
            } catch {
                logger.debug("stream lost; reconnecting", metadata: ["error": "\(error)"])
            }
            if let error = failure.withLock({ $0 }) { throw error }
            if stop.withLock({ $0 }) { return }
            if connected.withLock({ $0 }) { delay = 0.25 }
            connected.withLock { $0 = false }
            try await Task.sleep(for: .milliseconds(Int(delay * 1000 * Double.random(in: 0.8...1.2))))
            delay = min(delay * 2, 10)
        }
    }

    /// Why the node refuses to open the stream at `path`, when it does: the WebSocket library
    /// answers any refused upgrade with a bare 400, so the same request is made without the
    /// upgrade, which the node answers with its reason (401 for a wrong token). Nil when the
    /// node cannot be asked or does not refuse (a failure worth retrying).
    func refusal(of path: String) async -> ClientError? {
        var request = HTTPClientRequest(url: url + path)
        request.headers.add(name: "Authorization", value: "Bearer \(apiToken)")
        guard let response = try? await http.execute(request, timeout: .seconds(30)),
            (400..<500).contains(Int(response.status.code))
        else { return nil }
        let body = (try? await response.body.collect(upTo: 64 << 10)).map { Array($0.readableBytesView) } ?? []
        let message =
            (try? JSONParser.parseObject(body))?["message"]?.stringValue
            ?? String(decoding: body.prefix(200), as: UTF8.self)
        return ClientError(message: "the node refused the stream (\(response.status.code)): \(message)")
    }

    /// The events of one server message; changes at or before `after` (already delivered
    /// before a reconnect) are dropped.
    func events(_ text: String, after: EntityChangeID) throws -> [TailEvent] {
        let object = try JSONParser.parseObject(Array(text.utf8))
        guard case .string(let type)? = object["type"] else { return [] }
        switch type {
        case "frontend-update":
            guard case .array(let elements)? = object["data"]?.objectValue?["entityChanges"] else { return [] }
            var changes: [LoggedChange] = []
            for element in elements {
                guard case .object(var row) = element, let id = row["id"]?.intValue else { continue }
                let entity = row["entity"] ?? row["positions"]
                row["entity"] = nil
                row["positions"] = nil
                var record: [UInt8] = Array(#"{"entityChange":"#.utf8) + JSONValue.object(row).jsonBytes
                if let entity { record += Array(#","entity":"#.utf8) + entity.jsonBytes }
                record += [UInt8(ascii: "}")]
                let change = try ChangeRecord(wireJSON: record)
                if EntityChangeID(UInt64(id)) > after {
                    changes.append(LoggedChange(id: EntityChangeID(UInt64(id)), record: change))
                }
            }
            // Trilium orders a message referentially; deliver in id order.
            return changes.sorted { $0.id < $1.id }.map { .change($0) }
        case "caught-up": return [.caughtUp(EntityChangeID(UInt64(object["lastEntityChangeId"]?.intValue ?? 0)))]
        case "fell-behind": return [.fellBehind(EntityChangeID(UInt64(object["lastEntityChangeId"]?.intValue ?? 0)))]
        case "ping": return []
        default: return [.status(type: type, message: object)]
        }
    }

    /// Keeps the cache current and wakes `waitFor` callers (froca_updater's job, §6.4): an
    /// erased or deleted (`isDeleted`) entity leaves the cache, a note_reordering moves the
    /// cached branches it names to their new positions, anything else replaces the cached row.
    func absorb(_ event: TailEvent) {
        guard case .change(let logged) = event else { return }
        let processed = state.withLock { s -> EntityChangeID in
            let key = logged.change.key
            if logged.change.isErased {
                s.cache[key] = nil
            } else if logged.change.entityName == .noteReordering {
                for member in (try? logged.entity?.object()) ?? [:] {
                    let branch = EntityKey(.branches, member.key)
                    guard let row = try? s.cache[branch]?.object() else { continue }
                    var moved = row
                    moved["notePosition"] = member.value
                    s.cache[branch] = EntityRow(moved)
                }
            } else if let entity = logged.entity {
                s.cache[key] = entity.value(forKey: "isDeleted")?.isTruthy == true ? nil : entity
            }
            s.processed = max(s.processed, logged.id)
            s.maxKnown = max(s.maxKnown, logged.id)
            return s.processed
        }
        waiters.resume(upTo: processed)
    }

    /// The current row of an entity, as the followed stream has delivered it.
    public func cached(_ key: EntityKey) -> EntityRow? { state.withLock { $0.cache[key] } }

    /// The highest id this client has processed from the stream.
    public var processed: EntityChangeID { state.withLock { $0.processed } }

    /// Waits until the stream has delivered `id` — by default the highest id this client knows
    /// the node has (from its last write's answer): Trilium's `waitForMaxKnownEntityChangeId`.
    ///
    /// - Throws: `ClientError` after `timeout`.
    public func waitFor(maxKnownEntityChangeId id: EntityChangeID? = nil, timeout: Duration) async throws {
        let target = id ?? state.withLock { $0.maxKnown }
        try await waiters.wait(for: target, timeout: timeout) { [self] in
            processed
        } timeoutError: {
            ClientError(message: "change \(target) was not delivered within \(timeout)")
        }
    }
}

/// The events of a followed stream, read on demand (`TributaryClient.subscribe`).
public struct TailStream: AsyncSequence, Sendable {
    public typealias Element = TailEvent
    let client: TributaryClient
    let after: EntityChangeID
    let fullRows: Bool

    public func makeAsyncIterator() -> Iterator {
        let channel = AsyncThrowingChannel<TailEvent, any Error>()
        let task = Task { [client, after, fullRows] in
            do {
                // `send` waits until the iterator takes the event: that is the backpressure.
                try await client.follow(after: after, fullRows: fullRows) { event in
                    await channel.send(event)
                    return !Task.isCancelled
                }
                channel.finish()
            } catch {
                channel.fail(error)
            }
        }
        return Iterator(events: channel.makeAsyncIterator(), following: Following(task))
    }

    public struct Iterator: AsyncIteratorProtocol {
        var events: AsyncThrowingChannel<TailEvent, any Error>.Iterator
        /// Stops following when the last copy of the iterator goes away.
        let following: Following

        public mutating func next() async throws -> TailEvent? {
            try await events.next()
        }
    }

    final class Following: Sendable {
        let task: Task<Void, Never>
        init(_ task: Task<Void, Never>) { self.task = task }
        deinit { task.cancel() }
    }
}
