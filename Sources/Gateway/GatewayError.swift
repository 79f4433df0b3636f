import HTTPTypes
public import Hummingbird
import NIOCore
import TributaryCore

/// An HTTP answer to a request that cannot be served: a status and a message for the client,
/// as JSON `{"message": …}` (Trilium's error shape). Nothing internal goes into the message.
public struct GatewayError: HTTPResponseError, Sendable {
    public var status: HTTPResponse.Status
    public var message: String
    /// Trilium answers a missing session in plain text.
    var plainText = false

    public init(_ status: HTTPResponse.Status, _ message: String) {
        self.status = status
        self.message = message
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        if plainText {
            return Response(
                status: status, headers: [.contentType: "text/plain; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: message)))
        }
        var writer = JSONWriter()
        writer.write(.object(["message": .string(message)]))
        return Response(
            status: status, headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: writer.bytes)))
    }

    static func badRequest(_ message: String) -> GatewayError { GatewayError(.badRequest, message) }

    static let noSession: GatewayError = {
        var error = GatewayError(.unauthorized, "Logged in session not found")
        error.plainText = true
        return error
    }()

    static let noToken = GatewayError(
        .unauthorized, "missing or wrong bearer token; send 'Authorization: Bearer <apiToken>' (tributary credentials)")
}
