import Dispatch
import EventLog
public import Gateway
import Hummingbird
public import Logging
import Projections
import ServiceLifecycle
public import Sync
import Synchronization
import TributaryCore

/// How a node runs, validated before any file is opened.
public struct NodeConfiguration: Sendable {
    public var dataDirectory: String
    public var host: String
    public var port: Int
    public var syncVersion: Int
    public var durability: Store.Durability
    public var maxBodyBytes: Int
    /// The node this one syncs to, if any (it always serves the sync API itself).
    public var syncPeer: SyncPeer?
    public var syncInterval: Duration
    /// Sync every interval and after local writes (off: only when asked, e.g. in tests).
    public var syncAutomatically = true
    /// The longest wait between retries of a failing sync (the backoff doubles up to it).
    public var syncRetryCap: Duration = .seconds(60)
    /// How often each WebSocket is pinged; a socket silent until the next ping is closed.
    public var webSocketPing: Duration = .seconds(15)
    /// Largest entity row accepted, from peers and from local writes.
    public var maxEntityBytes = ChangeLimits().maxEntityBytes
    /// Most bytes all paged pushes in progress may hold together (a Trilium client splits a
    /// large push into pages and the node reassembles it).
    public var maxPushBytes = GatewayConfiguration.defaultMaxPagedBytes

    public init(
        dataDirectory: String = "./tributary-data", host: String = "127.0.0.1", port: Int = 8080,
        syncVersion: Int = 36, durability: Store.Durability = .fsync, maxBodyBytes: Int = 32 << 20,
        syncPeer: SyncPeer? = nil, syncInterval: Duration = .seconds(60)
    ) {
        self.dataDirectory = dataDirectory
        self.host = host
        self.port = port
        self.syncVersion = syncVersion
        self.durability = durability
        self.maxBodyBytes = maxBodyBytes
        self.syncPeer = syncPeer
        self.syncInterval = syncInterval
    }

    public func validate() throws {
        guard (0...65_535).contains(port) else {
            throw CredentialsError(message: "--port must be 0-65535, got \(port)")
        }
        guard !host.isEmpty else { throw CredentialsError(message: "--host must not be empty") }
        guard syncVersion > 0 else { throw CredentialsError(message: "--sync-version must be positive") }
        guard maxBodyBytes >= 1 << 16 else { throw CredentialsError(message: "the body limit must be at least 64 KiB") }
        guard maxEntityBytes >= 1 << 16 else {
            throw CredentialsError(message: "the entity row limit must be at least 64 KiB")
        }
        guard maxPushBytes >= 1 << 16 else {
            throw CredentialsError(message: "the paged push limit must be at least 64 KiB")
        }
        if let peer = syncPeer {
            guard peer.url.hasPrefix("http://") || peer.url.hasPrefix("https://") else {
                throw CredentialsError(message: "--sync-server must be an http:// or https:// URL, got '\(peer.url)'")
            }
            guard !peer.documentSecret.isEmpty else {
                throw CredentialsError(message: "--document-secret is required with --sync-server")
            }
            guard syncInterval >= .seconds(1) else {
                throw CredentialsError(message: "--sync-interval must be at least 1 second")
            }
        }
    }
}

/// A running node: its store, the view projector and the HTTP gateway, in one ServiceGroup
/// (dependencies first; shut down in reverse on SIGINT/SIGTERM or `shutdown()`).
public final class Node: Sendable {
    public let configuration: NodeConfiguration
    public let store: Store
    public let credentials: Credentials
    /// Syncs to the configured peer (nil without one).
    public let syncEngine: SyncEngine?
    /// Status messages to every WebSocket (sync progress, view rebuilds).
    public let statusMessages = StatusBroadcaster()
    /// The content-hash check's digests, kept between the checks of the gateway (a peer syncing
    /// here) and of the sync engine (this node syncing to its peer).
    public let digests = SectorDigests()
    let logger: Logger
    private let boundPort = Mutex<Int?>(nil)
    private let group = Mutex<ServiceGroup?>(nil)

    /// Opens the data directory (creating credentials at first start).
    public init(configuration: NodeConfiguration, logger: Logger) throws {
        try configuration.validate()
        // Before the store: its log and views make their meters when they open, and a meter made
        // before the metrics system is bootstrapped reports nowhere, ever.
        _ = MetricsBootstrap.shared()
        self.configuration = configuration
        self.logger = logger
        credentials = try Credentials.loadOrCreate(dataDirectory: configuration.dataDirectory)
        let store = try Store(
            dataDirectory: configuration.dataDirectory, durability: configuration.durability,
            limits: ChangeLimits(maxEntityBytes: configuration.maxEntityBytes), logger: logger)
        self.store = store
        let messages = statusMessages
        let digests = self.digests
        store.projections?.onRebuild { reason in
            let message: JSONValue = .object(["type": .string("reload-frontend"), "reason": .string(reason)])
            messages.broadcast(String(decoding: message.jsonBytes, as: UTF8.self))
        }
        do {
            syncEngine = try configuration.syncPeer.map {
                try SyncEngine(
                    peer: $0, log: store.log, applier: store.applier, interval: configuration.syncInterval,
                    retryCap: configuration.syncRetryCap, digests: digests, logger: logger
                ) { type, lastSyncedPush in
                    // Trilium's sync status messages: sync-pull-in-progress, sync-push-in-progress, …
                    messages.broadcastSyncStatus(type, lastSyncedPush: lastSyncedPush)
                }
            }
        } catch {
            store.close()
            throw error
        }
    }

    /// The port the gateway listens on, once it does.
    public var port: Int? { boundPort.withLock { $0 } }

    /// Runs until shutdown; `onListening` receives the bound port.
    public func run(handleSignals: Bool = true, onListening: @escaping @Sendable (Int) async -> Void = { _ in })
        async throws
    {
        var gatewayConfiguration = GatewayConfiguration(
            host: configuration.host, port: configuration.port, documentSecret: credentials.documentSecret,
            apiToken: credentials.apiToken, documentId: credentials.documentId,
            syncVersion: configuration.syncVersion,
            maxBodyBytes: configuration.maxBodyBytes, maxPagedBytes: configuration.maxPushBytes)
        gatewayConfiguration.webSocketPing = configuration.webSocketPing
        let projections = store.projections
        let engine = syncEngine
        var syncNow: (@Sendable () async -> SyncEngine.Outcome)?
        if let engine { syncNow = { await engine.syncOnce() } }
        var rebuildViews: (@Sendable ([String]) async throws -> Void)?
        if let projections {
            rebuildViews = { names in
                // Not while a sync cycle applies changes (the sync mutex).
                if let engine {
                    try await engine.exclusively { try await projections.rebuild(names) }
                } else {
                    try await projections.rebuild(names)
                }
            }
        }
        let gateway = Gateway(
            configuration: gatewayConfiguration,
            log: store.log, applier: store.applier, projections: projections,
            metricsText: {
                projections?.recordLag()
                return MetricsBootstrap.text()
            },
            peers: { engine.map { [$0.status] } ?? [] }, syncNow: syncNow, rebuildViews: rebuildViews,
            status: statusMessages,
            verify: { [store] in
                let outcome = try await VerifyOutcome(store: store, from: 0)
                return (outcome.isSound, outcome.text)
            },
            digests: digests,
            logger: logger)
        let application = gateway.makeApplication { port in
            self.boundPort.withLock { $0 = port }
            await onListening(port)
        }
        var services: [any Service] = []
        if let projections = store.projections { services.append(projections) }
        services.append(application)
        if let syncEngine, configuration.syncAutomatically { services.append(syncEngine) }
        let serviceGroup = ServiceGroup(
            configuration: .init(
                services: services.map { .init(service: $0) },
                gracefulShutdownSignals: handleSignals ? [.sigterm, .sigint] : [], logger: logger))
        group.withLock { $0 = serviceGroup }
        try await serviceGroup.run()
        // A clean stop leaves the indexes at the head: the next start has no overlay to rebuild.
        let unindexed = store.log.indexStatus.overlayCount
        try await store.log.flushIndex()
        logger.info("stopped", metadata: ["log.indexed": "\(unindexed)"])
    }

    /// Asks the services to stop gracefully; `run` returns once they have.
    public func shutdown() async {
        await group.withLock { $0 }?.triggerGracefulShutdown()
    }

    public func close() {
        syncEngine?.close()
        store.close()
    }
}
