import ArgumentParser
import Foundation
import Logging
import Sync
import Tributary
import TributaryCore

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the node: the Trilium sync server API, Tributary's API and the view projector.",
        discussion: """
            On first start the data directory gets credentials.json (mode 0600) with the documentSecret \
            of Trilium's sync login and the apiToken of Tributary's API; `tributary credentials` prints \
            it. SIGINT or SIGTERM stops the node gracefully.
            """)

    @OptionGroup var options: DataOptions
    @Option(help: "Address to listen on.") var host: String = "127.0.0.1"
    @Option(help: "Port to listen on (0: any free port).") var port: Int = 8080
    @Option(help: "Trilium's SYNC_VERSION; peers must match it exactly.") var syncVersion: Int = 36
    @Option(help: "fsync or none.") var durability: DurabilityOption = .fsync
    @Option(help: "Largest request body in MiB.") var maxBodyMib: Int = 32
    @Option(help: "Largest entity row accepted, in MiB, from peers and local writes (a big attachment's blob).")
    var maxEntityMib: Int = 32
    @Option(help: "Most MiB that the paged pushes of Trilium clients in progress may hold together.")
    var maxPushMib: Int = 256
    @Option(help: "Also sync to this node (its URL), every interval and soon after local writes.") var syncServer:
        String?
    @Option(help: "The document secret of the sync server (its credentials.json).") var documentSecret: String?
    @Option(help: "Seconds between syncs.") var syncInterval: Int = 60
    @Flag(help: "Pull and push every change, not only each entity's latest (Tributary peers).") var fullHistory = false

    func run() async throws {
        var logger = Logger(label: "tributary")
        // A server says what it does at info level unless TRIBUTARY_LOG_LEVEL says otherwise.
        logger.logLevel =
            ProcessInfo.processInfo.environment["TRIBUTARY_LOG_LEVEL"] == nil ? .info : logLevelFromEnvironment()
        let peer = syncServer.map {
            SyncPeer(url: $0, documentSecret: documentSecret ?? "", syncVersion: syncVersion, fullHistory: fullHistory)
        }
        var configuration = NodeConfiguration(
            dataDirectory: options.data, host: host, port: port, syncVersion: syncVersion,
            durability: durability.value, maxBodyBytes: maxBodyMib << 20, syncPeer: peer,
            syncInterval: .seconds(syncInterval))
        configuration.maxEntityBytes = maxEntityMib << 20
        configuration.maxPushBytes = maxPushMib << 20
        let node = try reporting { try Node(configuration: configuration, logger: logger) }
        defer { node.close() }
        let announcer = logger
        try await reporting {
            try await node.run { port in
                announcer.notice(
                    "listening", metadata: ["http.url": "http://\(host):\(port)", "data": "\(options.data)"])
            }
        }
    }
}

struct CredentialsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "credentials", abstract: "Print the node's credentials.json (created if missing).")

    @OptionGroup var options: DataOptions

    func run() async throws {
        try reporting {
            let credentials = try Credentials.loadOrCreate(dataDirectory: options.data)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(credentials), as: UTF8.self))
        }
    }
}

struct SyncCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sync",
        abstract: "Run one full sync cycle with a peer and exit (0 when converged).",
        discussion: """
            Trilium's cycle: login, push, pull until empty, push, finished, then the content-hash \
            check, re-queueing differing sectors on both sides and repeating until the digests match. \
            Cursors are kept in the log, so an interrupted sync resumes where it stopped.
            """)

    @OptionGroup var options: DataOptions
    @Option(help: "The peer's URL, e.g. http://hub:8080.") var peer: String
    @Option(help: "The peer's document secret (its credentials.json).") var documentSecret: String
    @Option(help: "Trilium's SYNC_VERSION.") var syncVersion: Int = 36
    @Flag(help: "Pull and push every change, not only each entity's latest (Tributary peers).") var fullHistory = false
    @Option(help: "Largest entity row accepted from the peer, in MiB.") var maxEntityMib: Int = 32

    func validate() throws {
        guard maxEntityMib >= 1 else { throw ValidationError("--max-entity-mib must be at least 1") }
        guard peer.hasPrefix("http://") || peer.hasPrefix("https://") else {
            throw ValidationError("--peer must be an http(s) URL")
        }
        guard !documentSecret.isEmpty else { throw ValidationError("--document-secret must not be empty") }
    }

    func run() async throws {
        let store: Store
        do {
            store = try Store(
                dataDirectory: options.data, limits: ChangeLimits(maxEntityBytes: maxEntityMib << 20),
                logger: Logger(label: "tributary"))
        } catch  where Store.isInUseByAnotherProcess(error) {
            // Most likely its node: that one syncs by itself, and on demand.
            throw fail(
                "\(error). A `tributary serve` on it syncs by itself; to run a cycle now: "
                    + "curl -X POST -H 'Authorization: Bearer <apiToken>' <its URL>/api/sync/now")
        } catch {
            throw fail("\(error)")
        }
        defer { store.close() }
        let engine = try reporting {
            try SyncEngine(
                peer: SyncPeer(
                    url: peer, documentSecret: documentSecret, syncVersion: syncVersion, fullHistory: fullHistory),
                log: store.log, applier: store.applier, logger: Logger(label: "tributary.sync"))
        }
        defer { engine.close() }
        guard let outcome = await engine.trySyncOnce() else { throw fail("a sync is already running") }
        if let projections = store.projections { try? await projections.catchUp() }
        if let failure = outcome.failure { throw fail(failure.message) }
        let status = engine.status
        if outcome.behind {
            // Everything exchanged is committed; converged it is not (exit 0 means converged).
            throw fail(
                "not converged: one side kept writing through all \(outcome.rounds) rounds; pushed \(outcome.pushed), "
                    + "pulled \(outcome.pulled) (lastSyncedPull \(status.lastSyncedPull)); run it again")
        }
        print(
            "converged with \(peer) in \(outcome.rounds) round(s): pushed \(outcome.pushed), pulled \(outcome.pulled); "
                + "lastSyncedPush \(status.lastSyncedPush), lastSyncedPull \(status.lastSyncedPull)")
    }
}
