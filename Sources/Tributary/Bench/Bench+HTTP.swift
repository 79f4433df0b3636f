import AsyncHTTPClient
import Crypto
import Foundation
import Logging
import NIOCore
import TributaryCore

/// The HTTP variants: W1 through `POST /api/changes` and through `PUT /api/sync/update` (a
/// Trilium client pushing pages of 1000), and W2 through `GET /api/changes`, against a node on
/// 127.0.0.1 with keep-alive connections. Bodies are encoded before the clock starts.
extension Bench {
    func runHTTP(
        _ records: [ChangeRecord], _ bytes: Int, scratch: String, logger: Logger, report: (BenchResult) -> Void
    )
        async throws
    {
        // Local writes: the entity rows of the events (an erasure of an entity never seen is ignored).
        let localBodies = stride(from: 0, to: records.count, by: batchSize).map { start -> [UInt8] in
            var w = JSONWriter(capacity: batchSize * 800)
            w.raw("[")
            for (i, r) in records[start..<min(records.count, start + batchSize)].enumerated() {
                if i > 0 { w.raw(",") }
                w.raw("{\"entityName\":")
                w.string(r.change.entityName.rawValue)
                w.raw(",\"entityId\":")
                w.string(r.change.entityId)
                if let entity = r.entity {
                    w.raw(",\"entity\":")
                    w.raw(entity.bytes)
                } else {
                    w.raw(",\"isErased\":1")
                }
                w.raw("}")
            }
            w.raw("]")
            return w.bytes
        }
        let syncBodies = stride(from: 0, to: records.count, by: batchSize).map { start -> [UInt8] in
            var w = JSONWriter(capacity: batchSize * 900)
            w.raw("{\"entities\":[")
            for (i, r) in records[start..<min(records.count, start + batchSize)].enumerated() {
                if i > 0 { w.raw(",") }
                r.writeWire(to: &w, id: EntityChangeID(UInt64(start + i + 1)))
            }
            w.raw("],\"instanceId\":\"benchClient0\"}")
            return w.bytes
        }
        try await withBenchNode(scratch, logger) { base, node, client in
            let (seconds, latencies) = try await post(localBodies, client: client) {
                var request = HTTPClientRequest(url: base + "/api/changes")
                request.method = .POST
                request.headers.add(name: "Authorization", value: "Bearer \(node.credentials.apiToken)")
                request.headers.add(name: "Content-Type", value: "application/json")
                return request
            }
            report(httpResult("http-post-changes", records.count, seconds, bytes, latencies))
            try await scan(base, node, client, records.count, bytes, report)
        }
        try await withBenchNode(scratch, logger) { base, node, client in
            let cookie = try await login(base, node, client)
            let (seconds, latencies) = try await post(syncBodies, client: client) {
                var request = HTTPClientRequest(url: base + "/api/sync/update")
                request.method = .PUT
                for (name, value) in [
                    ("Cookie", cookie), ("Content-Type", "application/json"), ("pageCount", "1"), ("pageIndex", "0"),
                    ("requestId", "n/a"),
                ] { request.headers.add(name: name, value: value) }
                return request
            }
            report(httpResult("http-sync-update", records.count, seconds, bytes, latencies))
        }
    }

    private func httpResult(_ variant: String, _ events: Int, _ seconds: Double, _ bytes: Int, _ latencies: [Double])
        -> BenchResult
    {
        let sorted = latencies.sorted()
        return BenchResult(
            workload: "W1-append", variant: variant, events: events, seconds: seconds, bytes: bytes,
            extra: [
                ("durability", durability.rawValue), ("batch", String(batchSize)),
                ("commit_p50_ms", String(format: "%.2f", percentile(sorted, 50) * 1e3)),
                ("commit_p99_ms", String(format: "%.2f", percentile(sorted, 99) * 1e3)),
            ])
    }

    /// Sends each body in turn, one in flight, and times it.
    private func post(_ bodies: [[UInt8]], client: HTTPClient, _ make: () -> HTTPClientRequest) async throws
        -> (Double, [Double])
    {
        var latencies: [Double] = []
        let started = monotonicSeconds()
        for body in bodies {
            var request = make()
            request.body = .bytes(ByteBuffer(bytes: body))
            let t = monotonicSeconds()
            let response = try await client.execute(request, timeout: .seconds(120))
            let answer = try await response.body.collect(upTo: 1 << 20)
            guard (200..<300).contains(Int(response.status.code)) else {
                throw ImportError(line: 0, message: "HTTP \(response.status.code): \(String(buffer: answer))")
            }
            latencies.append(monotonicSeconds() - t)
        }
        return (monotonicSeconds() - started, latencies)
    }

    /// W2 over `GET /api/changes`, pages of 1000.
    private func scan(
        _ base: String, _ node: Node, _ client: HTTPClient, _ count: Int, _ bytes: Int, _ report: (BenchResult) -> Void
    ) async throws {
        let started = monotonicSeconds()
        var cursor: UInt64 = 0
        var pages = 0
        while true {
            var request = HTTPClientRequest(url: base + "/api/changes?after=\(cursor)&limit=1000")
            request.headers.add(name: "Authorization", value: "Bearer \(node.credentials.apiToken)")
            let response = try await client.execute(request, timeout: .seconds(120))
            let body = try await response.body.collect(upTo: 256 << 20)
            // The cursor is at the end of the body: `…],"next":N}`.
            let text = String(buffer: body)
            guard let range = text.range(of: "\"next\":", options: .backwards),
                let next = UInt64(text[range.upperBound...].dropLast())
            else { throw ImportError(line: 0, message: "unexpected /api/changes answer") }
            if next == cursor { break }
            cursor = next
            pages += 1
        }
        report(
            BenchResult(
                workload: "W2-scan", variant: "http-get-changes", events: Int(cursor),
                seconds: monotonicSeconds() - started,
                bytes: bytes, extra: [("pages", String(pages)), ("events_expected", String(count))]))
    }

    private func login(_ base: String, _ node: Node, _ client: HTTPClient) async throws -> String {
        let timestamp = UTCDateTime.now().description
        let hash = Data(
            HMAC<SHA256>.authenticationCode(
                for: Data(timestamp.utf8), using: SymmetricKey(data: Data(node.credentials.documentSecret.utf8)))
        ).base64EncodedString()
        var request = HTTPClientRequest(url: base + "/api/login/sync")
        request.method = .POST
        request.body = .bytes(
            ByteBuffer(
                string:
                    #"{"timestamp":"\#(timestamp)","syncVersion":\#(node.configuration.syncVersion),"hash":"\#(hash)"}"#
            ))
        let response = try await client.execute(request, timeout: .seconds(30))
        guard response.status.code == 200, let cookie = response.headers.first(name: "set-cookie") else {
            throw ImportError(line: 0, message: "bench login failed: \(response.status.code)")
        }
        return cookie
    }

    /// A fresh node in a scratch directory, a client, and a clean shutdown.
    func withBenchNode(
        _ scratch: String, _ logger: Logger, _ body: (String, Node, HTTPClient) async throws -> Void
    ) async throws {
        let directory = scratch + "/bench-http-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let node = try Node(
            configuration: NodeConfiguration(
                dataDirectory: directory, port: 0, durability: durability, maxBodyBytes: 64 << 20),
            logger: logger)
        defer { node.close() }
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await node.run(handleSignals: false) { continuation.yield($0) } }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { return }
            do {
                try await body("http://127.0.0.1:\(port)", node, client)
            } catch {
                try? await client.shutdown()
                await node.shutdown()
                throw error
            }
            try await client.shutdown()
            await node.shutdown()
            try await group.waitForAll()
        }
    }
}
