import Synchronization

/// Tasks waiting for some progress (a view's checkpoint, a stream's last delivered change) to
/// reach an id, each with a timeout.
///
/// The owner keeps the progress; it reports each advance with `resume(upTo:)` *after* recording
/// it, and `wait` reads it through `reached` under this lock, so a waiter either sees the advance
/// or is registered before it is reported — never missed.
public final class IdWaiters: Sendable {
    private struct State {
        var nextToken = 0
        var waiters: [Int: (EntityChangeID, CheckedContinuation<Void, any Error>)] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    /// Resumes every waiter for an id at or below `reached`.
    public func resume(upTo reached: EntityChangeID) {
        let ready = state.withLock { s -> [CheckedContinuation<Void, any Error>] in
            var ready: [CheckedContinuation<Void, any Error>] = []
            for (token, (id, continuation)) in s.waiters where id <= reached {
                ready.append(continuation)
                s.waiters[token] = nil
            }
            return ready
        }
        for continuation in ready { continuation.resume() }
    }

    /// Returns once `reached()` is at or past `id`.
    ///
    /// - Throws: `timeoutError()` after `timeout`; `CancellationError` when cancelled.
    public func wait(
        for id: EntityChangeID, timeout: Duration, reached: @escaping @Sendable () -> EntityChangeID,
        timeoutError: @escaping @Sendable () -> any Error
    ) async throws {
        let token = state.withLock { s -> Int in
            s.nextToken += 1
            return s.nextToken
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await withTaskCancellationHandler {
                    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                        // nil: registered, to be resumed by `resume(upTo:)` or the cancellation handler.
                        let now = self.state.withLock { s -> Result<Void, any Error>? in
                            if reached() >= id { return .success(()) }
                            // Cancelled before registering: the handler below has already run and
                            // found nothing to resume, so nothing would resume this one. (A task is
                            // marked cancelled before its handlers run, and they take this lock.)
                            if Task.isCancelled { return .failure(CancellationError()) }
                            s.waiters[token] = (id, continuation)
                            return nil
                        }
                        if let now { continuation.resume(with: now) }
                    }
                } onCancel: {
                    self.state.withLock { $0.waiters.removeValue(forKey: token)?.1 }?.resume(
                        throwing: CancellationError())
                }
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw timeoutError()
            }
            defer { group.cancelAll() }
            try await group.next()
        }
    }
}
