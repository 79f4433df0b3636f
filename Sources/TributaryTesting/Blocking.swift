import Foundation

/// Runs blocking work — a socket read that waits for seconds, say — on a thread of its own.
///
/// Tests and the servers they start share Swift concurrency's pool, one thread per core (two on
/// the development machine). A test that blocks two of them stops every server task in the
/// process, its WebSocket ping timer included, which is how a liveness test once waited a minute
/// for a close that could not happen.
public func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try work() }) }.start()
    }
}

/// Sleeps on a thread of its own (see `onOwnThread`): a `Task.sleep` on a busy pool can
/// oversleep by seconds, which turns a "kill after N ms" into a kill after the work is done.
public func sleepOnOwnThread(for duration: Duration) async throws {
    let (seconds, attoseconds) = duration.components
    let microseconds = seconds * 1_000_000 + attoseconds / 1_000_000_000_000
    _ = try await onOwnThread { usleep(UInt32(clamping: microseconds)) }
}
