public import NIOPosix

/// Runs `work` on NIO's thread pool for blocking work (`pool`) and returns what it returns or
/// throws.
///
/// Swift's cooperative pool has one thread per core, and every request handler, WebSocket and
/// sync cycle of a node shares it. Synchronous work that holds a thread for seconds — reading
/// every entity of a large log for the content-hash check, verifying every record — would stall
/// them all on a two-core machine; here it waits for a thread of its own instead.
/// (`DispatchQueue.global()` is no way out on Linux: it runs on the cooperative pool's threads.)
public func offloaded<T: Sendable>(
    on pool: NIOThreadPool = .singleton, _ work: @escaping @Sendable () throws -> T
) async throws -> T {
    try await pool.runIfActive(work)
}
