import Foundation
import NIOHTTP1
import Testing
import Tributary
import TributaryCore
import TributaryTesting

/// Every bad request gets a clear 4xx and writes nothing.
@Suite(.timeLimit(.minutes(3))) struct GatewayBadInputTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var method: HTTPMethod
        var path: String
        var headers: [(String, String)] = []
        var body: String?
        var status: Int
        /// nil: the status alone is checked (the wording is not settled).
        var message: String?
        var testDescription: String { name }
    }

    static let session = "SESSION"
    static let token = "TOKEN"

    static let cases: [Case] = [
        Case(
            name: "login: a body far larger than a login", method: .POST, path: "/api/login/sync",
            body: #"{"timestamp":""# + String(repeating: "x", count: 20_000) + #""}"#, status: 413,
            message: "larger than 16384"),
        Case(
            name: "login: a timestamp that is not a string", method: .POST, path: "/api/login/sync",
            body: #"{"timestamp":5,"syncVersion":36,"hash":"aGFzaA=="}"#, status: 400, message: nil),
        Case(
            name: "login: a syncVersion that is not an integer", method: .POST, path: "/api/login/sync",
            body: #"{"timestamp":"\#(UTCDateTime.now())","syncVersion":"36","hash":"aGFzaA=="}"#, status: 400,
            message: nil),
        Case(
            name: "login: a hash that is not a string", method: .POST, path: "/api/login/sync",
            body: #"{"timestamp":"\#(UTCDateTime.now())","syncVersion":36,"hash":true}"#, status: 400,
            message: nil),
        Case(
            name: "malformed JSON", method: .POST, path: "/api/changes", body: "[{", status: 400,
            message: "malformed JSON"),
        Case(
            name: "not an array", method: .POST, path: "/api/changes", body: #"{"a":1}"#, status: 400,
            message: "must be a JSON array"),
        Case(name: "empty batch", method: .POST, path: "/api/changes", body: "[]", status: 400, message: "empty"),
        Case(
            name: "unknown entity name", method: .POST, path: "/api/changes",
            body: #"[{"entityName":"widgets","entityId":"w1","entity":{}}]"#, status: 400,
            message: "[0].entityName: unknown entityName 'widgets'"),
        Case(
            name: "entityId of the wrong type", method: .POST, path: "/api/changes",
            body: #"[{"entityName":"notes","entityId":5,"entity":{}}]"#, status: 400, message: "[0].entityId"),
        Case(
            name: "malformed entityId", method: .POST, path: "/api/changes",
            body:
                #"[{"entityName":"notes","entityId":"ok1","entity":{"title":"a"}},{"entityName":"notes","entityId":"bad id","entity":{}}]"#,
            status: 400, message: "[1]: entityId"),
        Case(
            name: "entity that is not an object", method: .POST, path: "/api/changes",
            body: #"[{"entityName":"notes","entityId":"n1","entity":[1]}]"#, status: 400,
            message: "[0].entity: expected an object"),
        Case(
            name: "primary key mismatch", method: .POST, path: "/api/changes",
            body: #"[{"entityName":"notes","entityId":"n1","entity":{"noteId":"n2"}}]"#, status: 400,
            message: "entity.noteId"),
        Case(
            name: "isErased not 0 or 1", method: .POST, path: "/api/changes",
            body: #"[{"entityName":"notes","entityId":"n1","isErased":"yes"}]"#, status: 400, message: "[0].isErased"),
        Case(
            name: "oversized body", method: .POST, path: "/api/changes",
            body: "[" + String(repeating: " ", count: 300_000) + "]", status: 413, message: "larger than"),
        Case(
            name: "push: malformed JSON", method: .PUT, path: "/api/sync/update", headers: [("Cookie", session)],
            body: "{oops", status: 400, message: "malformed JSON"),
        Case(
            name: "push: a record with a wrong type", method: .PUT, path: "/api/sync/update",
            headers: [("Cookie", session)],
            body:
                #"{"entities":[{"entityChange":{"entityName":"notes","entityId":"n1","hash":"h","isErased":"no","changeId":"c1","instanceId":"i1","utcDateChanged":"2024-01-01 00:00:00.000Z"},"entity":{"noteId":"n1"}}],"instanceId":"peer1"}"#,
            status: 400, message: "entities[0].entityChange.isErased"),
        Case(
            name: "push: unknown entity name", method: .PUT, path: "/api/sync/update", headers: [("Cookie", session)],
            body:
                #"{"entities":[{"entityChange":{"entityName":"widgets","entityId":"w1","hash":"h","isErased":0,"changeId":"c1","instanceId":"i1","utcDateChanged":"2024-01-01 00:00:00.000Z"},"entity":{"widgetId":"w1"}}],"instanceId":"peer1"}"#,
            status: 400, message: "unknown entityName 'widgets'"),
        Case(
            name: "push: an oversized single page", method: .PUT, path: "/api/sync/update",
            headers: [("Cookie", session)],
            body: #"{"entities":[],"instanceId":"peer1","x":""# + String(repeating: "x", count: 300_000) + #""}"#,
            status: 413, message: "larger than"),
        Case(
            name: "push: non-numeric pageIndex", method: .PUT, path: "/api/sync/update",
            headers: [("Cookie", session), ("pageCount", "2"), ("pageIndex", "first"), ("requestId", "r1")],
            body: "{", status: 400, message: "pageIndex"),
        Case(
            name: "push: negative pageIndex", method: .PUT, path: "/api/sync/update",
            headers: [("Cookie", session), ("pageCount", "2"), ("pageIndex", "-1"), ("requestId", "r1")],
            body: "{", status: 400, message: "pageIndex -1 is out of range"),
        Case(
            name: "push: no instanceId", method: .PUT, path: "/api/sync/update", headers: [("Cookie", session)],
            body: #"{"entities":[]}"#, status: 400, message: "instanceId"),
        Case(
            name: "push: page index out of range", method: .PUT, path: "/api/sync/update",
            headers: [("Cookie", session), ("pageCount", "2"), ("pageIndex", "2"), ("requestId", "r1")], body: "{",
            status: 400,
            message: "out of range"),
        Case(
            name: "push: a page of an unknown request", method: .PUT, path: "/api/sync/update",
            headers: [("Cookie", session), ("pageCount", "3"), ("pageIndex", "1"), ("requestId", "nobody")], body: "{",
            status: 400,
            message: "does not have expected record"),
        Case(
            name: "push: non-numeric pageCount", method: .PUT, path: "/api/sync/update",
            headers: [("Cookie", session), ("pageCount", "many")], body: "{", status: 400, message: "pageCount"),
        Case(
            name: "pull: cursor missing", method: .GET, path: "/api/sync/changed?instanceId=x",
            headers: [("Cookie", session)], status: 400, message: "lastEntityChangeId"),
        Case(
            name: "pull: negative cursor", method: .GET, path: "/api/sync/changed?lastEntityChangeId=-1",
            headers: [("Cookie", session)], status: 400, message: "non-negative"),
        Case(
            name: "pull: non-numeric cursor", method: .GET, path: "/api/sync/changed?lastEntityChangeId=abc",
            headers: [("Cookie", session)], status: 400, message: "non-negative"),
        Case(
            name: "pull: cursor out of range", method: .GET,
            path: "/api/sync/changed?lastEntityChangeId=99999999999999999999", headers: [("Cookie", session)],
            status: 400, message: "non-negative"),
        Case(name: "replay: bad limit", method: .GET, path: "/api/changes?limit=0", status: 400, message: "limit"),
        Case(name: "replay: bad cursor", method: .GET, path: "/api/changes?after=-5", status: 400, message: "after"),
        Case(
            name: "replay: unknown entity", method: .GET, path: "/api/changes?entity=widgets", status: 400,
            message: "widgets"),
        Case(
            name: "queue-sector: unknown entity", method: .POST, path: "/api/sync/queue-sector/widgets/a",
            headers: [("Cookie", session)], status: 400, message: "widgets"),
    ]

    @Test(arguments: cases) func isRefusedAndWritesNothing(_ c: Case) async throws {
        try await withTemporaryDirectory { dir in
            try await withNode(dataDirectory: dir + "/node", maxBodyBytes: 256 << 10) { node in
                var client = TriliumClient(node)
                _ = try await client.login()
                let seeded = try await node.request(
                    .POST, "/api/changes", headers: [node.bearer],
                    body: Array(#"[{"entityName":"notes","entityId":"seed1","entity":{"title":"x"}}]"#.utf8))
                #expect(seeded.status == 200)
                var headers = c.headers.map { $0.1 == GatewayBadInputTests.session ? ("Cookie", client.cookie!) : $0 }
                if c.path.hasPrefix("/api/changes") { headers.append(node.bearer) }
                let result = try await node.request(
                    c.method, c.path, headers: headers, body: c.body.map { Array($0.utf8) })
                #expect(result.status == c.status, "\(result.text)")
                if let message = c.message { #expect(result.text.contains(message), "\(result.text)") }
                #expect(result.header("trilium-max-entity-change-id") == "1")
                #expect(node.node.store.log.head == 1)
            }
        }
    }
}

@Suite(.timeLimit(.minutes(3))) struct GatewayAccessTests {
    static let guarded: [(HTTPMethod, String)] = [
        (.PUT, "/api/sync/update"), (.GET, "/api/sync/changed?lastEntityChangeId=0"), (.POST, "/api/sync/finished"),
        (.GET, "/api/sync/check"), (.POST, "/api/sync/check-entity-changes"), (.POST, "/api/sync/queue-sector/notes/a"),
        (.GET, "/api/setup/sync-seed"), (.POST, "/api/changes"), (.GET, "/api/changes"), (.GET, "/api/status"),
        (.GET, "/metrics"), (.POST, "/api/verify"), (.POST, "/api/toast"), (.POST, "/api/sync/now"),
        (.POST, "/api/rebuild"),
    ]

    @Test func everyRouteButHealthSetupStatusAndStatsNeedsCredentials() async throws {
        try await withTemporaryDirectory { dir in
            try await withNode(dataDirectory: dir + "/node") { node in
                for (method, path) in GatewayAccessTests.guarded {
                    for headers in [[], [("Authorization", "Bearer wrong")], [("Cookie", "trilium.sid=nope")]] {
                        let result = try await node.request(
                            method, path, headers: headers, body: method == .GET ? nil : Array("[]".utf8))
                        #expect(result.status == 401, "\(method) \(path) with \(headers) answered \(result.status)")
                        #expect(!result.text.contains(node.apiToken))
                    }
                }
                for path in ["/healthz", "/api/setup/status", "/api/sync/stats"] {
                    let open = try await node.request(.GET, path)
                    #expect(open.status == 200, "\(path)")
                }
                let metrics = try await node.request(.GET, "/metrics", headers: [node.bearer])
                #expect(metrics.status == 200)
                #expect(metrics.text.contains("# TYPE"))
                #expect(node.node.store.log.head == 0)
            }
        }
    }

    @Test func theNodeShutsDownGracefullyAndReleasesItsPort() async throws {
        try await withTemporaryDirectory { dir in
            let port = try await withNode(dataDirectory: dir + "/node") { node throws in
                let health = try await node.request(.GET, "/healthz")
                #expect(health.status == 200)
                try await post(node, notes(0..<3000, prefix: "stop"))
                return node.port
            }
            // After shutdown the port no longer answers, and the data directory opens again with
            // its indexes at the head: nothing left to rebuild or index.
            #expect(!isListening(port: port))
            let store = try Store(dataDirectory: dir + "/node", logger: .init(label: "t"))
            defer { store.close() }
            #expect(store.log.head == 3000)
            #expect(store.log.indexStatus.checkpoint == 3000 && store.log.indexStatus.overlayCount == 0)
        }
    }
}
