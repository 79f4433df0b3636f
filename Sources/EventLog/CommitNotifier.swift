import Synchronization
import TributaryCore

/// Publishes the head after each commit and wakes whoever waits for it. It carries no data:
/// every reader re-reads the log from its own cursor (the log is the buffer).
final class CommitNotifier: Sendable {
    private struct State {
        var head: EntityChangeID
        var closed = false
        var nextToken = 0
        var waiters: [Int: (EntityChangeID, CheckedContinuation<Void, any Error>)] = [:]
        var observers: [Int: @Sendable (EntityChangeID) -> Void] = [:]
    }

    private let state: Mutex<State>

    init(head: EntityChangeID) {
        state = Mutex(State(head: head))
    }

    var head: EntityChangeID { state.withLock { $0.head } }

    func publish(_ head: EntityChangeID) {
        let (ready, observers) = state.withLock {
            s -> ([CheckedContinuation<Void, any Error>], [@Sendable (EntityChangeID) -> Void]) in
            s.head = head
            var ready: [CheckedContinuation<Void, any Error>] = []
            for (token, (beyond, continuation)) in s.waiters where head > beyond {
                ready.append(continuation)
                s.waiters[token] = nil
            }
            return (ready, Array(s.observers.values))
        }
        for continuation in ready { continuation.resume() }
        for observer in observers { observer(head) }
    }

    /// Calls `observer` with the new head after each commit, on the committing thread: it must
    /// only note the news (e.g. wake a task), never block. Cheaper than a task per waiter when
    /// many readers follow the head.
    func observe(_ observer: @escaping @Sendable (EntityChangeID) -> Void) -> Int {
        state.withLock { s in
            s.nextToken += 1
            s.observers[s.nextToken] = observer
            return s.nextToken
        }
    }

    func stopObserving(_ token: Int) { _ = state.withLock { $0.observers.removeValue(forKey: token) } }

    /// Returns once the head is past `id`.
    ///
    /// - Throws: `CancellationError` when the task is cancelled; `EventLogError.closed` on close.
    func wait(beyond id: EntityChangeID) async throws {
        let token = state.withLock { s -> Int in
            s.nextToken += 1
            return s.nextToken
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome = state.withLock { s -> Result<Void, any Error>? in
                    if s.closed { return .failure(EventLogError(.closed, "the log was closed")) }
                    if s.head > id { return .success(()) }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    s.waiters[token] = (id, continuation)
                    return nil
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            let continuation = state.withLock { $0.waiters.removeValue(forKey: token)?.1 }
            continuation?.resume(throwing: CancellationError())
        }
    }

    func close() {
        let all = state.withLock { s in
            s.closed = true
            defer { s.waiters = [:] }
            return s.waiters.values.map(\.1)
        }
        for continuation in all { continuation.resume(throwing: EventLogError(.closed, "the log was closed")) }
    }
}
