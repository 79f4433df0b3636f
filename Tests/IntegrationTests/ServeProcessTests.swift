import Foundation
import Logging
import Subprocess
import Sync
import SystemPackage
import Testing
import Tributary
import TributaryCore
import TributaryTesting

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// `tributary serve` as an operator runs it: a child process stopped by a signal.
@Suite(.timeLimit(.minutes(3))) struct ServeProcessTests {
    /// Sends a request to the child server and returns its status.
    func status(_ port: Int, _ method: String, _ path: String, headers: [String: String] = [:], body: String? = nil)
        async throws -> Int
    {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.httpMethod = method
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        request.httpBody = body.map { Data($0.utf8) }
        let (_, response) = try await URLSession.shared.data(for: request)
        return (response as? HTTPURLResponse)?.statusCode ?? 0
    }

    /// SIGTERM and SIGINT each stop the server gracefully (exit 0, "stopped", the port released,
    /// the indexes flushed), and a trace-level log of logins, syncs, tokens in URLs and the sync
    /// seed holds neither secret.
    @Test func serveStopsCleanlyOnSIGTERMAndSIGINTAndNeverLogsASecret() async throws {
        try await withTemporaryDirectory { dir in
            let data = dir + "/data"
            for signal in [Signal.terminate, Signal.interrupt] {
                let port = freePort()
                let result = try await Subprocess.run(
                    .path(FilePath(TributaryBinary.path)),
                    arguments: ["serve", "--data", data, "--port", String(port)],
                    environment: .inherit.updating(["TRIBUTARY_LOG_LEVEL": "trace"]), input: .none,
                    output: .discarded, error: .string(limit: 64 << 20)
                ) { execution in
                    let deadline = ContinuousClock.now + .seconds(60)
                    while !isListening(port: port) && ContinuousClock.now < deadline {
                        try await Task.sleep(for: .milliseconds(50))
                    }
                    let credentials = try Credentials.load(dataDirectory: data)
                    let bearer = ["Authorization": "Bearer \(credentials.apiToken)"]
                    let notes = (0..<50).map {
                        #"{"entityName":"notes","entityId":"sig\#($0)","entity":{"title":"t"}}"#
                    }
                    let written = try await status(
                        port, "POST", "/api/changes", headers: bearer, body: "[" + notes.joined(separator: ",") + "]")
                    #expect(written == 200)
                    #expect(try await status(port, "GET", "/ws?token=\(credentials.apiToken)&after=0") == 400)
                    let seed = Data("dummy:\(credentials.apiToken)".utf8).base64EncodedString()
                    #expect(
                        try await status(port, "GET", "/api/setup/sync-seed", headers: ["trilium-cred": seed]) == 200)
                    // A real login, push and pull: another node syncs with this one.
                    let spoke = try Store(dataDirectory: dir + "/spoke-\(port)", logger: Logger(label: "spoke"))
                    let engine = try SyncEngine(
                        peer: SyncPeer(url: "http://127.0.0.1:\(port)", documentSecret: credentials.documentSecret),
                        log: spoke.log, applier: spoke.applier, logger: Logger(label: "spoke"))
                    let outcome = await engine.syncOnce()
                    engine.close()
                    spoke.close()
                    #expect(outcome.succeeded, "\(String(describing: outcome.failure))")
                    try execution.send(signal: signal)
                    return credentials
                }
                #expect(result.terminationStatus == .exited(0), "\(signal): \(result.terminationStatus)")
                let log = result.standardError
                #expect(log.contains("stopped"), "\(signal): \(log.suffix(2000))")
                #expect(!isListening(port: port))
                let credentials = result.closureResult
                #expect(!log.contains(credentials.apiToken), "the apiToken is in the log")
                #expect(!log.contains(credentials.documentSecret), "the documentSecret is in the log")
                // A clean stop left nothing for the next start to index again.
                try withReadOnlyStore(data) { store throws in
                    #expect(store.log.indexStatus.overlayCount == 0)
                    #expect(store.log.indexStatus.checkpoint == store.log.head)
                }
            }
        }
    }
}
