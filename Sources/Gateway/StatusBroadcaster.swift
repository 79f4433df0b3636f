import Synchronization
public import TributaryCore

/// Sends status messages (`sync-finished`, `reload-frontend`, `toast`, …) to every open socket,
/// and knows where each socket's stream is. Each socket has a small mailbox; a socket that does
/// not read loses old status messages, never holds up the sender or the others.
public final class StatusBroadcaster: Sendable {
    private let mailboxes = Mutex<[Int: (mailbox: Mailbox, cursor: CursorBox)]>([:])
    private let nextId = Mutex(0)

    public init() {}

    /// Sends a JSON text message to every socket.
    public func broadcast(_ message: String) {
        for mailbox in mailboxes.withLock({ $0.values.map(\.mailbox) }) { mailbox.post(message, droppable: true) }
    }

    /// Sends one of Trilium's sync status messages (`sync-pull-in-progress`, `sync-finished`, …):
    /// `{"type":…,"lastSyncedPush":n}`.
    public func broadcastSyncStatus(_ type: String, lastSyncedPush: EntityChangeID) {
        broadcast(#"{"type":"\#(type)","lastSyncedPush":\#(lastSyncedPush.rawValue)}"#)
    }

    func register(_ mailbox: Mailbox, cursor: CursorBox) -> Int {
        let id = nextId.withLock { n -> Int in
            n += 1
            return n
        }
        mailboxes.withLock { $0[id] = (mailbox, cursor) }
        return id
    }

    func unregister(_ id: Int) { _ = mailboxes.withLock { $0.removeValue(forKey: id) } }

    /// Open sockets.
    public var count: Int { mailboxes.withLock { $0.count } }

    /// The last id sent on each open socket (nil until its first ping), in no particular order.
    /// A socket's position is all the server keeps of its stream, so a socket far behind the
    /// head costs no more memory than one at the head.
    public var cursors: [EntityChangeID?] { mailboxes.withLock { $0.values.map { $0.cursor.withLock { $0 } } } }
}

/// The messages waiting for one socket's writer, and its wake-up. Bounded at `limit` messages:
/// the oldest droppable one (status) goes first; when all are replies (a client sending pings
/// without reading), the new reply is dropped.
final class Mailbox: Sendable {
    private struct State {
        var messages: [(String, Bool)] = []
        var signalled = false
        var waiter: CheckedContinuation<Void, Never>?
        var closed = false

        /// The waiting writer to resume, or a note that there is news for the next wait.
        mutating func wake() -> CheckedContinuation<Void, Never>? {
            if let waiter {
                self.waiter = nil
                return waiter
            }
            signalled = true
            return nil
        }
    }

    private let state = Mutex(State())
    let limit = 64

    func post(_ message: String, droppable: Bool = false) {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            guard !s.closed else { return nil }
            if s.messages.count >= limit {
                guard let oldest = s.messages.firstIndex(where: \.1) else { return nil }
                s.messages.remove(at: oldest)
            }
            s.messages.append((message, droppable))
            return s.wake()
        }
        waiter?.resume()
    }

    /// Wakes the writer without a message (a commit happened).
    func signal() {
        state.withLock { $0.wake() }?.resume()
    }

    func take() -> [String] {
        state.withLock { s in
            defer { s.messages = [] }
            return s.messages.map(\.0)
        }
    }

    /// Returns after the next `post` or `signal` (at once if one happened since the last wait).
    func wait() async {
        await withCheckedContinuation { continuation in
            let now = state.withLock { s -> Bool in
                if s.signalled || s.closed {
                    s.signalled = false
                    return true
                }
                s.waiter = continuation
                return false
            }
            if now { continuation.resume() }
        }
    }

    func close() {
        state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.closed = true
            return s.wake()
        }?.resume()
    }

    var isClosed: Bool { state.withLock { $0.closed } }
}
