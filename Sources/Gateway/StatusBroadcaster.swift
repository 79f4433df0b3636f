import Synchronization

/// Sends status messages (`sync-finished`, `reload-frontend`, `toast`, …) to every open socket.
/// Each socket has a small mailbox; a socket that does not read loses old status messages, never
/// holds up the sender or the others.
public final class StatusBroadcaster: Sendable {
    private let mailboxes = Mutex<[Int: Mailbox]>([:])
    private let nextId = Mutex(0)

    public init() {}

    /// Sends a JSON text message to every socket.
    public func broadcast(_ message: String) {
        for mailbox in mailboxes.withLock({ Array($0.values) }) { mailbox.post(message, droppable: true) }
    }

    func register(_ mailbox: Mailbox) -> Int {
        let id = nextId.withLock { n -> Int in
            n += 1
            return n
        }
        mailboxes.withLock { $0[id] = mailbox }
        return id
    }

    func unregister(_ id: Int) { _ = mailboxes.withLock { $0.removeValue(forKey: id) } }

    /// Open sockets.
    public var count: Int { mailboxes.withLock { $0.count } }
}

/// The messages waiting for one socket's writer, and its wake-up. Bounded: beyond `limit`
/// droppable messages (status) the oldest goes.
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
            if droppable, s.messages.filter(\.1).count >= limit, let oldest = s.messages.firstIndex(where: \.1) {
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
