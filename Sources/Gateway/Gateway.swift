import Crypto
public import EventLog
import Foundation
import HTTPTypes
public import Hummingbird
public import Logging
import Metrics
import NIOCore
public import Projections
public import Sync
import TributaryCore

/// The HTTP face of a node: Trilium's sync server API (so an unmodified Trilium client can sync
/// against it) and Tributary's own API (local writes, audit replay, status, metrics).
public struct Gateway: Sendable {
    public let configuration: GatewayConfiguration
    let log: EntityChangeLog
    let server: SyncServer
    let projections: ProjectionRunner?
    let metricsText: @Sendable () -> String
    let peers: @Sendable () -> [SyncEngine.PeerStatus]
    /// Runs a sync cycle with the configured peer (joining one that runs); nil without a peer.
    let syncNow: (@Sendable () async -> SyncEngine.Outcome)?
    /// Rebuilds the named views (all for none), outside any sync cycle.
    let rebuildViews: (@Sendable ([String]) async throws -> Void)?
    let verify: (@Sendable () async throws -> (isSound: Bool, text: String))?
    let logger: Logger
    let sessions = Sessions()
    let uploads: PagedUploads
    /// Status messages to every open WebSocket.
    public let statusMessages: StatusBroadcaster
    let frames = FrameCache()

    public init(
        configuration: GatewayConfiguration, log: EntityChangeLog, applier: ChangeApplier,
        projections: ProjectionRunner?, metricsText: @escaping @Sendable () -> String,
        peers: @escaping @Sendable () -> [SyncEngine.PeerStatus] = { [] },
        syncNow: (@Sendable () async -> SyncEngine.Outcome)? = nil,
        rebuildViews: (@Sendable ([String]) async throws -> Void)? = nil,
        status: StatusBroadcaster = StatusBroadcaster(),
        verify: (@Sendable () async throws -> (isSound: Bool, text: String))? = nil,
        digests: SectorDigests = SectorDigests(),
        logger: Logger
    ) {
        self.verify = verify
        self.configuration = configuration
        self.log = log
        server = SyncServer(log: log, applier: applier, digests: digests)
        self.projections = projections
        self.metricsText = metricsText
        self.peers = peers
        self.syncNow = syncNow
        self.rebuildViews = rebuildViews
        self.statusMessages = status
        self.logger = logger
        uploads = PagedUploads(maxBytes: configuration.maxPagedBytes)
    }

    /// The HTTP application, a `Service` for the node's ServiceGroup. `onServerRunning` receives
    /// the bound port (useful with port 0).
    public func makeApplication(onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in })
        -> some ApplicationProtocol
    {
        let router = Router()
        // Outermost, so it times refusals too: the next one turns errors into responses, and
        // Hummingbird's metrics record a duration only for a response.
        router.add(middleware: MetricsMiddleware())
        router.add(middleware: ResponseHeadersMiddleware(log: log, logger: logger))
        addTriliumRoutes(router)
        addTributaryRoutes(router)
        router.get("/ws") { request, _ -> Response in try webSocketRefusal(request) }
        return Application(
            router: router,
            server: .http1WebSocketUpgrade(
                configuration: .init(
                    ws: .init(maxFrameSize: 64 << 10, autoPing: .enabled(timePeriod: configuration.webSocketPing)))
            ) { request, _, _ in self.webSocketUpgrade(request) },
            configuration: .init(
                address: .hostname(configuration.host, port: configuration.port), serverName: "Tributary"),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? 0) },
            logger: logger)
    }

    // MARK: - Authentication

    func requireToken(_ request: Request) throws(GatewayError) {
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer "),
            constantTimeEqual(String(header.dropFirst(7)), configuration.apiToken)
        else { throw GatewayError.noToken }
    }

    /// Trilium's sync routes: a session from `POST /api/login/sync` (or the API token).
    /// Returns who is calling: the session token, or `api-token` for the bearer token.
    @discardableResult
    func requireSession(_ request: Request) throws(GatewayError) -> String {
        if let cookie = request.headers[.cookie], let token = Sessions.token(inCookieHeader: cookie),
            sessions.isValid(token)
        {
            return token
        }
        if (try? requireToken(request)) != nil { return "api-token" }
        throw GatewayError.noSession
    }

    // MARK: - Helpers

    /// The request's body, refused with 413 past `limit` (by default the configured maximum).
    func body(_ request: Request, limit: Int? = nil) async throws -> [UInt8] {
        var request = request
        let limit = limit ?? configuration.maxBodyBytes
        do {
            let buffer = try await request.collectBody(upTo: limit)
            return Array(buffer.readableBytesView)
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            throw GatewayError(.contentTooLarge, "the body is larger than \(limit) bytes")
        }
    }

    func json(_ bytes: [UInt8], status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        json(value.jsonBytes, status: status)
    }

    /// The push cursor of this node's sync, for `frontend-update` (null without a peer).
    func lastSyncedPush() -> EntityChangeID? { peers().first?.lastSyncedPush }

    func noContent() -> Response { Response(status: .noContent) }

    /// A query parameter as a change id: a non-negative integer within JavaScript's exact range.
    func idParameter(_ request: Request, _ name: String, required: Bool) throws(GatewayError) -> EntityChangeID? {
        guard let text = request.uri.queryParameters[name[...]] else {
            if required { throw .badRequest("the query parameter '\(name)' is required") }
            return nil
        }
        guard let value = UInt64(text), value <= EntityChangeID.maxWire.rawValue else {
            throw .badRequest(
                "'\(name)' must be a non-negative integer up to \(EntityChangeID.maxWire), got '\(text.prefix(40))'")
        }
        return EntityChangeID(value)
    }
}

/// Compares without an early exit, so timing does not reveal how much of a secret matched.
func constantTimeEqual(_ a: String, _ b: String) -> Bool {
    let x = Array(a.utf8)
    let y = Array(b.utf8)
    var difference = UInt8(x.count == y.count ? 0 : 1)
    for i in 0..<max(x.count, y.count) {
        difference |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
    }
    return difference == 0
}

/// Adds `trilium-max-entity-change-id` to every response, and turns unexpected errors into a
/// plain 500 (logged here, never described to the client). A full disk is not unexpected: the
/// client gets 507 and what to do, since nothing was written and a retry succeeds once there is room.
struct ResponseHeadersMiddleware<Context: RequestContext>: RouterMiddleware {
    let log: EntityChangeLog
    let logger: Logger
    static var header: HTTPField.Name { HTTPField.Name("trilium-max-entity-change-id")! }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as any HTTPResponseError {
            response = try error.response(from: request, context: context)
        } catch let error as EventLogError where error.code == .diskFull {
            logger.error("request failed", metadata: ["http.path": "\(request.uri.path)", "error": "\(error)"])
            response = try GatewayError(
                .init(code: 507, reasonPhrase: "Insufficient Storage"),
                "the server's disk is full; nothing was written, retry once space is freed"
            ).response(from: request, context: context)
        } catch {
            // The operator needs to know what failed: the storage errors' messages name the
            // record, entity or file and hold no request data. Other errors are logged by type
            // alone, since their text may quote what a client sent.
            let described = error is EventLogError || error is ProjectionError ? "\(error)" : "\(type(of: error))"
            logger.error("request failed", metadata: ["http.path": "\(request.uri.path)", "error": "\(described)"])
            response = try GatewayError(.internalServerError, "internal error").response(
                from: request, context: context)
        }
        response.headers[Self.header] = String(log.head.rawValue)
        return response
    }
}
