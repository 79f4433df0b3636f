import Dispatch
import Foundation
import NIOPosix
import Sync
import Synchronization
import Testing

@Suite(.timeLimit(.minutes(3))) struct OffloadedTests {
    /// Work parked on a semaphore, and a valve on a thread of its own that releases it after a
    /// while if the test cannot: the test runs on the cooperative pool, which inline blocking
    /// (or blocking on Dispatch's global queues, which share its threads) would hold.
    final class Gate: Sendable {
        enum State { case closed, opened, openedByValve }
        private let semaphore = DispatchSemaphore(value: 0)
        private let state = Mutex(State.closed)
        let waiters: Int

        init(waiters: Int) { self.waiters = waiters }

        func startValve(after seconds: Double) {
            Thread {
                Thread.sleep(forTimeInterval: seconds)
                self.open(.openedByValve)
            }.start()
        }

        func wait() { semaphore.wait() }

        func open(_ how: State = .opened) {
            let first = state.withLock { s -> Bool in
                guard s == .closed else { return false }
                s = how
                return true
            }
            if first { for _ in 0..<waiters { semaphore.signal() } }
        }

        var openedByValve: Bool { state.withLock { $0 == .openedByValve } }
    }

    @Test func blockingWorkLeavesTheCooperativePoolFree() async throws {
        // More blocked calls than the pool has threads, with room for a pool wider than the cores.
        let count = 4 * ProcessInfo.processInfo.activeProcessorCount + 4
        let gate = Gate(waiters: count)
        // The whole suite keeps both pool threads busy, and a short sleep has been seen to take
        // 26 s then; blocked threads would hold it until the valve.
        gate.startValve(after: 90)
        // A thread for each call, so the node's shared pool, which other tests use, stays free.
        let threads = NIOThreadPool(numberOfThreads: count)
        threads.start()
        defer { threads.shutdownGracefully { _ in } }
        let calls = (0..<count).map { i in
            Task {
                try await offloaded(on: threads) {
                    gate.wait()
                    return i
                }
            }
        }
        // Were the calls holding the pool's threads, this sleep would end only once the valve
        // opened the gate.
        try await Task.sleep(for: .milliseconds(50))
        #expect(!gate.openedByValve, "a 50 ms sleep waited 90 s for the blocked calls")
        gate.open()
        var sum = 0
        for call in calls { sum += try await call.value }
        #expect(sum == count * (count - 1) / 2)
    }

    @Test func rethrowsWhatTheWorkThrows() async {
        struct Refused: Error, Equatable {}
        await #expect(throws: Refused()) { try await offloaded { () throws -> Int in throw Refused() } }
    }
}
