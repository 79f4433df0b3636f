import ArgumentParser
import Foundation
import Logging
import Tributary

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

    func run() async throws {
        var logger = Logger(label: "tributary")
        // A server says what it does at info level unless TRIBUTARY_LOG_LEVEL says otherwise.
        logger.logLevel =
            ProcessInfo.processInfo.environment["TRIBUTARY_LOG_LEVEL"] == nil ? .info : logLevelFromEnvironment()
        let configuration = NodeConfiguration(
            dataDirectory: options.data, host: host, port: port, syncVersion: syncVersion,
            durability: durability.value, maxBodyBytes: maxBodyMib << 20)
        let node: Node
        do {
            node = try Node(configuration: configuration, logger: logger)
        } catch {
            throw fail("\(error)")
        }
        defer { node.close() }
        let announcer = logger
        do {
            try await node.run { port in
                announcer.notice(
                    "listening", metadata: ["http.url": "http://\(host):\(port)", "data": "\(options.data)"])
            }
        } catch {
            throw fail("\(error)")
        }
    }
}

struct CredentialsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "credentials", abstract: "Print the node's credentials.json (created if missing).")

    @OptionGroup var options: DataOptions

    func run() async throws {
        do {
            let credentials = try Credentials.loadOrCreate(dataDirectory: options.data)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(credentials), as: UTF8.self))
        } catch {
            throw fail("\(error)")
        }
    }
}
