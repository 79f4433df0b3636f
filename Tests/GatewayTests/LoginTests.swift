import Foundation
import Sync
import Testing
import TributaryCore
import TributaryTesting

/// `POST /api/login/sync` checks what Trilium checks, in Trilium's order (trilium-protocol.md
/// §3.5), and offers Tributary's full-history extension only to a client that asks.
@Suite(.timeLimit(.minutes(3))) struct LoginTests {
    func login(_ node: RunningNode, _ body: JSONObject, headers: [(String, String)] = []) async throws -> HTTPResult {
        try await node.request(
            .POST, "/api/login/sync", headers: [("Content-Type", "application/json")] + headers,
            body: JSONValue.object(body).jsonBytes)
    }

    @Test func theClockThenTheVersionThenTheSecretAsTriliumChecksThem() async throws {
        try await withTemporaryDirectory { dir in
            try await withNode(dataDirectory: dir + "/node") { node in
                let secret = node.node.credentials.documentSecret
                let now = UTCDateTime.now().description
                let old = UTCDateTime(millisecondsSinceEpoch: UTCDateTime.now().millisecondsSinceEpoch - 6 * 60_000)
                    .description
                func body(_ timestamp: String, _ version: JSONValue?, hash: String?) -> JSONObject {
                    var object: JSONObject = ["timestamp": .string(timestamp)]
                    if let version { object["syncVersion"] = version }
                    if let hash { object["hash"] = .string(hash) }
                    return object
                }
                let right = TriliumClient.hmac(now, secret: secret)
                // A stale clock is reported before a wrong version and a missing hash.
                let stale = try await login(node, body(old, .string("x"), hash: nil))
                #expect(stale.status == 401, "\(stale.text)")
                // Trilium compares the version strictly: a string or a float is another version.
                for version: JSONValue in [.string("36"), .number("36.0"), .bool(true)] {
                    let answer = try await login(node, body(now, version, hash: right))
                    #expect(answer.status == 400)
                    #expect(answer.text.contains("Non-matching sync versions, local is version 36, remote is"))
                }
                let missing = try await login(node, body(now, nil, hash: right))
                #expect(missing.text.contains("remote is undefined"), "\(missing.text)")
                // A right version with no hash is a wrong secret, as in Trilium.
                let noHash = try await login(node, body(now, .number(36), hash: nil))
                #expect(noHash.status == 400)
                #expect(noHash.text.contains("Sync login credentials are incorrect"))
                let ok = try await login(node, body(now, .number(36), hash: right))
                #expect(ok.status == 200, "\(ok.text)")
                #expect(ok.header(SyncPeer.historyHeader) == nil)
                let asked = try await login(
                    node, body(now, .number(36), hash: right), headers: [(SyncPeer.historyHeader, "full")])
                #expect(asked.status == 200)
                #expect(asked.header(SyncPeer.historyHeader) == "full")
            }
        }
    }
}
