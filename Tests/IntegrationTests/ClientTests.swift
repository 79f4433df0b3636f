import Foundation
import Subprocess
import Synchronization
import SystemPackage
import Testing
import Tributary
import TributaryClient
import TributaryCore
import TributaryTesting

/// `count` local writes of notes `prefix0`, `prefix1`, … in one batch.
func noteWrites(_ prefix: String, _ range: Range<Int>) -> [JSONValue] {
    range.map { i in
        .object([
            "entityName": .string("notes"), "entityId": .string("\(prefix)\(i)"),
            "entity": .object(["title": .string("\(prefix) \(i)")]),
        ])
    }
}

/// `TributaryClient` against real nodes: the subscription as an `AsyncSequence`, refusals that
/// end it with the reason, reconnection across a restart, and `tributary tail` on top of it.
@Suite(.timeLimit(.minutes(3))) struct ClientTests {
    @Test func aSubscriptionReplaysThenStreamsLiveChangesInOrder() async throws {
        try await withTemporaryDirectory { dir in
            try await withNode(dataDirectory: dir + "/node") { node in
                let client = TributaryClient(url: node.baseURL, apiToken: node.apiToken)
                _ = try await client.write(noteWrites("sub", 0..<5))
                var ids: [UInt64] = []
                var caughtUpAt: UInt64?
                for try await event in client.subscribe(after: 2) {
                    switch event {
                    case .change(let logged): ids.append(logged.id.rawValue)
                    case .caughtUp(let id):
                        // Replay is done; what is written now arrives live on the same stream.
                        caughtUpAt = id.rawValue
                        _ = try await client.write(noteWrites("live", 0..<3))
                    default: break
                    }
                    if ids.last == 8 { break }
                }
                #expect(ids == [3, 4, 5, 6, 7, 8])
                #expect(caughtUpAt == 5)
                #expect(client.cached(EntityKey(.notes, "live2"))?.value(forKey: "title") == .string("live 2"))
                await client.close()
            }
        }
    }

    @Test func theCacheDropsDeletedEntitiesAndMovesReorderedBranches() async throws {
        try await withTemporaryDirectory { dir in
            try await withNode(dataDirectory: dir + "/node") { node in
                let client = TributaryClient(url: node.baseURL, apiToken: node.apiToken)
                let following = Task { try await client.follow { _ in true } }
                func branch(_ id: String, _ position: Int) -> JSONValue {
                    .object([
                        "entityName": .string("branches"), "entityId": .string(id),
                        "entity": .object([
                            "noteId": .string(id + "n"), "parentNoteId": .string("parent000001"),
                            "notePosition": .number(position),
                        ]),
                    ])
                }
                _ = try await client.write(
                    noteWrites("cache", 0..<2) + [branch("branch000001", 10), branch("branch000002", 20)])
                try await client.waitFor(timeout: .seconds(30))
                #expect(client.cached(EntityKey(.notes, "cache0")) != nil)
                // Trilium deletes by setting isDeleted; froca drops the entity.
                _ = try await client.write([
                    .object([
                        "entityName": .string("notes"), "entityId": .string("cache0"),
                        "entity": .object(["title": .string("gone"), "isDeleted": .number(1)]),
                    ])
                ])
                // A reordering of the parent's children moves the cached branches.
                _ = try await client.write([
                    .object([
                        "entityName": .string("note_reordering"), "entityId": .string("parent000001"),
                        "entity": .object(["branch000001": .number(30), "branch000002": .number(5)]),
                    ])
                ])
                try await client.waitFor(timeout: .seconds(30))
                #expect(client.cached(EntityKey(.notes, "cache0")) == nil)
                #expect(client.cached(EntityKey(.notes, "cache1")) != nil)
                #expect(
                    client.cached(EntityKey(.branches, "branch000001"))?.value(forKey: "notePosition") == .number(30))
                #expect(
                    client.cached(EntityKey(.branches, "branch000002"))?.value(forKey: "notePosition") == .number(5))
                following.cancel()
                _ = await following.result
                await client.close()
            }
        }
    }

    @Test func aWrongTokenEndsTheSubscriptionWithTheNodesReason() async throws {
        try await withTemporaryDirectory { dir in
            try await withNode(dataDirectory: dir + "/node") { node in
                let client = TributaryClient(url: node.baseURL, apiToken: "not the token")
                // It used to retry forever: `tributary tail --token wrong` hung without a word.
                do {
                    for try await _ in client.subscribe() {}
                    Issue.record("the subscription ended without an error")
                } catch let error as ClientError {
                    #expect(error.message.contains("401"), "\(error)")
                }
                await client.close()
            }
        }
    }

    @Test func aFollowingClientResumesAfterTheNodeRestartsAndLosesNothing() async throws {
        try await withTemporaryDirectory { dir in
            let port = freePort()
            let credentials = try Credentials.loadOrCreate(dataDirectory: dir + "/node")
            let client = TributaryClient(url: "http://127.0.0.1:\(port)", apiToken: credentials.apiToken)
            let seen = Mutex<[UInt64]>([])
            let following = Task {
                for try await event in client.subscribe() {
                    guard case .change(let logged) = event else { continue }
                    seen.withLock { $0.append(logged.id.rawValue) }
                    if logged.id.rawValue == 10 { return }
                }
            }
            try await withNode(dataDirectory: dir + "/node", port: port) { _ in
                _ = try await client.write(noteWrites("before", 0..<5))
                try await waitUntil(.seconds(30)) { seen.withLock { $0.count } == 5 }
            }
            // The node is down: the client retries with backoff until it is back.
            try await Task.sleep(for: .milliseconds(700))
            try await withNode(dataDirectory: dir + "/node", port: port) { _ in
                _ = try await client.write(noteWrites("after", 0..<5))
                try await following.value
            }
            #expect(seen.withLock { $0 } == Array(1...10))
            await client.close()
        }
    }

    @Test func tailPrintsTheStreamAsJSONLinesAndStopsOnARefusedToken() async throws {
        try await withTemporaryDirectory { dir in
            try await withNode(dataDirectory: dir + "/node") { node in
                let client = TributaryClient(url: node.baseURL, apiToken: node.apiToken)
                _ = try await client.write(noteWrites("tail", 0..<4))
                await client.close()
                let lines = try await Subprocess.run(
                    .path(FilePath(TributaryBinary.path)),
                    arguments: ["tail", "--url", node.baseURL, "--token", node.apiToken, "--from", "1"],
                    input: .none, output: .sequence, error: .discarded
                ) { execution in
                    var lines: [String] = []
                    for try await line in execution.standardOutput.strings() {
                        lines.append(line)
                        if lines.count == 3 { break }
                    }
                    try? execution.send(signal: .terminate)
                    return lines
                }.closureResult
                let objects = try lines.map { try JSONParser.parseObject(Array($0.utf8)) }
                #expect(objects.map { $0["id"]?.intValue } == [2, 3, 4])
                #expect(objects.first?["entityChange"]?.objectValue?["entityId"] == .string("tail1"))
                #expect(objects.first?["entity"]?.objectValue?["title"] == .string("tail 1"))

                let refused = try await runTributary(["tail", "--url", node.baseURL, "--token", "wrong"])
                #expect(refused.exitCode == 1)
                #expect(refused.standardError.contains("401"), "\(refused.standardError)")
            }
        }
    }
}
