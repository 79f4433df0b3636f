import AsyncHTTPClient
import Foundation
import NIOCore
public import NIOHTTP1

/// A response, collected.
public struct HTTPResult: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]

    public var text: String { String(decoding: body, as: UTF8.self) }
    public func header(_ name: String) -> String? { headers.first(name: name) }
}

extension RunningNode {
    /// Sends a request to the node and collects the answer (30 s limit).
    public func request(
        _ method: HTTPMethod, _ path: String, headers: [(String, String)] = [], body: [UInt8]? = nil
    ) async throws -> HTTPResult {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        let response = try await client.execute(request, timeout: .seconds(30))
        let collected = try await response.body.collect(upTo: 256 << 20)
        return HTTPResult(
            status: Int(response.status.code), headers: response.headers, body: Array(collected.readableBytesView))
    }

    /// The bearer header of Tributary's API.
    public var bearer: (String, String) { ("Authorization", "Bearer \(apiToken)") }
}
