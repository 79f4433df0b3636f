public import AsyncHTTPClient
import Foundation
public import Logging
public import Sync
public import Tributary

/// A running node on 127.0.0.1 and a port chosen by the system, with an HTTP client.
public struct RunningNode: Sendable {
    public let node: Node
    public let port: Int
    public let client: HTTPClient

    public var baseURL: String { "http://127.0.0.1:\(port)" }
    public var apiToken: String { node.credentials.apiToken }
}

/// Starts a node in `dataDirectory`, runs `body`, then shuts it down gracefully.
public func withNode<R: Sendable>(
    dataDirectory: String, syncVersion: Int = 36, maxBodyBytes: Int = 32 << 20, maxEntityBytes: Int = 32 << 20,
    maxPushBytes: Int = 256 << 20, port: Int = 0,
    syncPeer: SyncPeer? = nil, syncInterval: Duration = .seconds(3600), syncAutomatically: Bool = false,
    syncRetryCap: Duration = .seconds(60), webSocketPing: Duration = .seconds(15),
    logger: Logger = Logger(label: "node"),
    _ body: (RunningNode) async throws -> R
) async throws -> R {
    var configuration = NodeConfiguration(
        dataDirectory: dataDirectory, host: "127.0.0.1", port: port, syncVersion: syncVersion,
        maxBodyBytes: maxBodyBytes, syncPeer: syncPeer, syncInterval: syncInterval)
    configuration.syncAutomatically = syncAutomatically
    configuration.syncRetryCap = syncRetryCap
    configuration.webSocketPing = webSocketPing
    configuration.maxEntityBytes = maxEntityBytes
    configuration.maxPushBytes = maxPushBytes
    let node = try Node(configuration: configuration, logger: logger)
    defer { node.close() }
    let client = HTTPClient(eventLoopGroupProvider: .singleton)
    let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
    do {
        let result = try await runNode(node, client: client, ports: ports, continuation: continuation, body)
        try? await client.shutdown()
        return result
    } catch {
        // Whatever happened (a node that never listened, a cancelled test): a client dropped
        // without shutting down stops the whole test process.
        try? await client.shutdown()
        throw error
    }
}

private func runNode<R: Sendable>(
    _ node: Node, client: HTTPClient, ports: AsyncStream<Int>, continuation: AsyncStream<Int>.Continuation,
    _ body: (RunningNode) async throws -> R
) async throws -> R {
    try await withThrowingTaskGroup(of: R?.self) { group in
        group.addTask {
            // A node that stops (or fails to listen) ends the wait for its port.
            defer { continuation.finish() }
            try await node.run(handleSignals: false) { port in continuation.yield(port) }
            return nil
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else {
            try await group.waitForAll()
            throw CancellationError()
        }
        let result: R
        do {
            result = try await body(RunningNode(node: node, port: port, client: client))
        } catch {
            // The client's keep-alive connections go first, so the server has none to wait for.
            try? await client.shutdown()
            await node.shutdown()
            try? await group.waitForAll()
            throw error
        }
        try await client.shutdown()
        await node.shutdown()
        try await group.waitForAll()
        return result
    }
}
