/// What the gateway needs to know, validated once at startup.
public struct GatewayConfiguration: Sendable {
    public var host: String
    /// 0 picks a free port (tests); the bound port is reported through `onServerRunning`.
    public var port: Int
    /// The shared secret of Trilium's sync login (HMAC key).
    public var documentSecret: String
    /// Bearer token of Tributary's own API and `/ws`.
    public var apiToken: String
    public var documentId: String
    /// Trilium's `SYNC_VERSION`; peers must match it exactly.
    public var syncVersion: Int
    /// Largest request body accepted, in bytes (one page of a multi-page push, or any body).
    public var maxBodyBytes: Int
    /// Most bytes all multi-page pushes in progress may hold together.
    public var maxPagedBytes: Int
    public static let defaultMaxPagedBytes = 256 << 20
    /// How often `/ws` pings each socket; one that has not answered by the next ping is closed.
    public var webSocketPing: Duration = .seconds(15)

    public init(
        host: String = "127.0.0.1", port: Int = 8080, documentSecret: String, apiToken: String,
        documentId: String, syncVersion: Int = 36, maxBodyBytes: Int = 32 << 20,
        maxPagedBytes: Int = defaultMaxPagedBytes
    ) {
        self.host = host
        self.port = port
        self.documentSecret = documentSecret
        self.apiToken = apiToken
        self.documentId = documentId
        self.syncVersion = syncVersion
        self.maxBodyBytes = maxBodyBytes
        self.maxPagedBytes = maxPagedBytes
    }
}
