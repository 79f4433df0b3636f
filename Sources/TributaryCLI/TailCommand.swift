import ArgumentParser
import Foundation
import Tributary
import TributaryClient
import TributaryCore

struct TailCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tail",
        abstract: "Print a node's changes as JSON Lines: everything after --from, then each new one as it is written.",
        discussion: """
            Lines have the shape of `tributary replay`. Status messages (caught-up, sync-finished, …) go \
            to standard error. The stream reconnects by itself and resumes after the last change printed.
            """)

    @Option(help: "The node's URL.") var url: String = "http://127.0.0.1:8080"
    @Option(help: "The node's apiToken (default: read from --data's credentials.json).") var token: String?
    @Option(help: "The data directory whose credentials.json holds the token.") var data: String = "./tributary-data"
    @Option(help: "Print the changes after this id.") var from: UInt64 = 0
    @Flag(help: "Every change with its row (by default as Trilium's UI gets them: no blob or token rows).")
    var fullRows = false

    func run() async throws {
        let apiToken: String
        if let token {
            apiToken = token
        } else {
            do {
                apiToken = try Credentials.load(dataDirectory: data).apiToken
            } catch {
                throw fail("no --token, and \(error)")
            }
        }
        let client = TributaryClient(url: url, apiToken: apiToken)
        let output = Output()
        try await reporting(cleanup: client.close) {
            try await client.follow(after: EntityChangeID(from), fullRows: fullRows) { event in
                switch event {
                case .change(let logged):
                    var writer = JSONWriter()
                    logged.writeAudit(to: &writer)
                    writer.raw("\n")
                    output.write(writer.bytes)
                    output.flush()
                    return !output.closed
                case .caughtUp(let id): FileHandleStderr.write("caught up at \(id)\n")
                case .fellBehind(let id): FileHandleStderr.write("fell behind at \(id); reading from the log\n")
                case .status(let type, _): FileHandleStderr.write("\(type)\n")
                }
                return true
            }
        }
        await client.close()
    }
}
