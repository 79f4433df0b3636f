import Synchronization
import Testing
import TributaryCore

@Suite(.timeLimit(.minutes(3))) struct IdWaitersTests {
    struct TimedOut: Error {}

    /// Progress kept by the owner and reported after it is recorded, as IdWaiters requires.
    final class Progress: Sendable {
        let waiters = IdWaiters()
        private let reached = Mutex(EntityChangeID.zero)

        var value: EntityChangeID { reached.withLock { $0 } }

        func advance(to id: EntityChangeID) {
            reached.withLock { $0 = id }
            waiters.resume(upTo: id)
        }

        func wait(for id: EntityChangeID, timeout: Duration) async throws {
            try await waiters.wait(for: id, timeout: timeout, reached: { self.value }, timeoutError: { TimedOut() })
        }
    }

    @Test func aWaitReturnsOnceTheProgressReachesItsId() async throws {
        let progress = Progress()
        async let waited: Void = progress.wait(for: 5, timeout: .seconds(30))
        try await Task.sleep(for: .milliseconds(20))
        progress.advance(to: 4)
        progress.advance(to: 7)
        try await waited
        // Already reached: returns at once.
        try await progress.wait(for: 7, timeout: .seconds(30))
    }

    @Test func aWaitForAnIdThatNeverComesTimesOut() async throws {
        let progress = Progress()
        await #expect(throws: TimedOut.self) { try await progress.wait(for: 1, timeout: .milliseconds(50)) }
    }

    @Test func aWaitFromACancelledTaskEndsWithCancellation() async throws {
        // The task is cancelled before the wait registers, so the cancellation handler runs first
        // and finds nothing to resume; the wait used to register anyway and hang for good.
        let progress = Progress()
        let outcome = Mutex<(any Error)?>(nil)
        let finished = Mutex(false)
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            do {
                try await progress.wait(for: 1_000_000, timeout: .seconds(3600))
            } catch {
                outcome.withLock { $0 = error }
            }
            finished.withLock { $0 = true }
        }
        // Generous: with the whole test suite running in parallel, the task may wait seconds for a
        // thread. Unfixed, it never finishes.
        let deadline = ContinuousClock.now + .seconds(60)
        while !finished.withLock({ $0 }) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(finished.withLock { $0 }, "the wait of a cancelled task did not end")
        #expect(outcome.withLock { $0 } is CancellationError)
        task.cancel()
    }
}
