import AsyncHTTPClient
import Foundation
import Glibc
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
    /// Sends a request to the node and collects the answer (by default within 30 s).
    public func request(
        _ method: HTTPMethod, _ path: String, headers: [(String, String)] = [], body: [UInt8]? = nil,
        timeout: Duration = .seconds(30)
    ) async throws -> HTTPResult {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        let response = try await client.execute(request, timeout: .init(timeout))
        let collected = try await response.body.collect(upTo: 256 << 20)
        return HTTPResult(
            status: Int(response.status.code), headers: response.headers, body: Array(collected.readableBytesView))
    }

    /// The bearer header of Tributary's API.
    public var bearer: (String, String) { ("Authorization", "Bearer \(apiToken)") }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
public func isListening(port: Int) -> Bool {
    guard let fd = connectToLoopback(port: port) else { return false }
    close(fd)
    return true
}

/// A TCP socket connected to 127.0.0.1:`port`, `configure` applied to it before connecting; nil
/// (with `errno` saying why) if it cannot be made or nothing accepts there.
public func connectToLoopback(port: Int, configure: (Int32) -> Void = { _ in }) -> Int32? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    configure(fd)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
        }
    }
    guard connected else {
        let why = errno
        close(fd)
        errno = why
        return nil
    }
    return fd
}
