import Foundation
import HummingbirdWSClient
import Logging
import NIOCore
import Sync
import Synchronization
import Testing
import Tributary
import TributaryClient
import TributaryCore
import TributaryTesting

/// What one raw socket saw: change ids in order of arrival, and the other message types.
final class SocketLog: Sendable {
    private let state = Mutex<(ids: [UInt64], types: [String])>(([], []))
    var ids: [UInt64] { state.withLock { $0.ids } }
    var types: [String] { state.withLock { $0.types } }

    /// Records a message; returns the ids it carried.
    @discardableResult
    func record(_ text: String) throws -> [UInt64] {
        let object = try JSONParser.parseObject(Array(text.utf8))
        let type = object["type"]?.stringValue ?? "?"
        var ids: [UInt64] = []
        if type == "frontend-update", case .array(let elements)? = object["data"]?.objectValue?["entityChanges"] {
            ids = elements.compactMap { $0.objectValue?["id"]?.intValue }.map(UInt64.init).sorted()
        }
        state.withLock { s in
            s.ids += ids
            s.types.append(type)
        }
        return ids
    }
}

/// A raw WebSocket to the node, read until `until` says stop.
func rawSocket(
    _ node: RunningNode, query: String = "?after=0", token: String? = nil, send: [String] = [],
    until: @escaping @Sendable (SocketLog) -> Bool
) async throws -> SocketLog {
    let log = SocketLog()
    var configuration = WebSocketClientConfiguration()
    configuration.maxFrameSize = 64 << 20
    configuration.additionalHeaders = [.authorization: "Bearer \(token ?? node.apiToken)"]
    try await WebSocketClient.connect(
        url: "ws://127.0.0.1:\(node.port)/ws\(query)", configuration: configuration, logger: Logger(label: "ws")
    ) { inbound, outbound, _ in
        for message in send { try await outbound.write(.text(message)) }
        for try await message in inbound.messages(maxSize: 64 << 20) {
            guard case .text(let text) = message else { continue }
            try log.record(text)
            if until(log) { return }
        }
    }
    return log
}

func notes(_ range: Range<Int>, prefix: String = "ws") -> [JSONValue] {
    range.map { i in
        .object([
            "entityName": .string("notes"), "entityId": .string("\(prefix)\(i)"),
            "entity": .object(["title": .string("note \(i)")]),
        ])
    }
}

func post(_ node: RunningNode, _ batch: [JSONValue]) async throws {
    let result = try await node.request(
        .POST, "/api/changes", headers: [node.bearer], body: JSONValue.array(batch).jsonBytes)
    #expect(result.status == 200, "\(result.text)")
}

@Suite(.timeLimit(.minutes(3))) struct WebSocketTests {
    @Test func aSubscriberFromZeroGetsEveryIdOnceInOrderWhileAWriterAppends() async throws {
        try await withTemporaryDirectory { dir in
            try await withNode(dataDirectory: dir + "/node") { node in
                try await post(node, notes(0..<200))
                async let subscriber = rawSocket(node) { log in log.ids.last == 5000 }
                for start in stride(from: 200, to: 5000, by: 40) { try await post(node, notes(start..<(start + 40))) }
                let log = try await subscriber
                #expect(log.ids == Array(1...5000))
                #expect(log.types.contains("caught-up"))
                #expect(!log.types.contains("error"))
            }
        }
    }

    @Test func aResumedSubscriberLosesNothing() async throws {
        try await withTemporaryDirectory { dir in
            try await withNode(dataDirectory: dir + "/node") { node in
                try await post(node, notes(0..<3000))
                let first = try await rawSocket(node) { $0.ids.count >= 1200 }
                let last = try #require(first.ids.last)
                try await post(node, notes(3000..<3500))
                let second = try await rawSocket(node, query: "?after=\(last)") { $0.ids.last == 3500 }
                #expect(first.ids == Array(1...last))
                #expect(second.ids == Array((last + 1)...3500))
                #expect(second.ids.first == last + 1)
                #expect(Set(first.ids).isDisjoint(with: second.ids))
            }
        }
    }

    @Test func theFirstPingSetsTheCursorAndALaterPingNeverRewinds() async throws {
        try await withTemporaryDirectory { dir in
            try await withNode(dataDirectory: dir + "/node") { node in
                try await post(node, notes(0..<100))
                let log = try await rawSocket(
                    node, query: "",
                    send: [#"{"type":"ping","lastEntityChangeId":60}"#, #"{"type":"ping","lastEntityChangeId":0}"#]
                ) { $0.types.filter { $0 == "ping" }.count >= 2 && $0.ids.last == 100 }
                #expect(log.ids == Array(61...100))
            }
        }
    }

    @Test func twoHundredSubscribersAllComplete() async throws {
        try await withTemporaryDirectory { dir in
            try await withNode(dataDirectory: dir + "/node") { node in
                try await post(node, notes(0..<300))
                let complete = try await withThrowingTaskGroup(of: Bool.self) { group in
                    for _ in 0..<200 {
                        group.addTask {
                            let log = try await rawSocket(node) { $0.types.last == "caught-up" && $0.ids.last == 400 }
                            return log.ids == Array(1...400)
                        }
                    }
                    try await Task.sleep(for: .milliseconds(200))
                    try await post(node, notes(300..<400))
                    return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
                }
                #expect(complete == 200)
            }
        }
    }

    @Test func aStalledSubscriberHoldsUpNobodyAndIsServedFromTheLogWhenItReads() async throws {
        try await withTemporaryDirectory { dir in
            try await withNode(dataDirectory: dir + "/node") { node in
                let release = Mutex<CheckedContinuation<Void, Never>?>(nil)
                let stalled = SocketLog()
                let connected = Mutex(false)
                async let stalledRun: Void = {
                    var configuration = WebSocketClientConfiguration()
                    configuration.maxFrameSize = 64 << 20
                    configuration.additionalHeaders = [.authorization: "Bearer \(node.apiToken)"]
                    try await WebSocketClient.connect(
                        url: "ws://127.0.0.1:\(node.port)/ws?after=0", configuration: configuration,
                        logger: Logger(label: "ws")
                    ) { inbound, _, _ in
                        connected.withLock { $0 = true }
                        // Do not read until released: the server's writes to this socket back up.
                        await withCheckedContinuation { c in release.withLock { $0 = c } }
                        for try await message in inbound.messages(maxSize: 64 << 20) {
                            guard case .text(let text) = message else { continue }
                            try stalled.record(text)
                            if stalled.ids.last == 12_000 { return }
                        }
                    }
                }()
                while !connected.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(10)) }
                // The writer and another subscriber go on regardless.
                for start in stride(from: 0, to: 12_000, by: 1000) {
                    try await post(node, notes(start..<(start + 1000)))
                }
                let other = try await rawSocket(node) { $0.ids.last == 12_000 }
                #expect(other.ids == Array(1...12_000))
                while release.withLock({ $0 == nil }) { try await Task.sleep(for: .milliseconds(10)) }
                release.withLock { $0?.resume() }
                try await stalledRun
                #expect(stalled.ids == Array(1...12_000))
            }
        }
    }

    @Test func syncStatusMessagesArriveDuringARealSync() async throws {
        try await withTemporaryDirectory { dir in
            try await withNode(dataDirectory: dir + "/hub") { hub in
                try await post(hub, notes(0..<50, prefix: "hub"))
                let peer = SyncPeer(url: hub.baseURL, documentSecret: hub.node.credentials.documentSecret)
                try await withNode(dataDirectory: dir + "/spoke", syncPeer: peer) { spoke in
                    async let log = rawSocket(spoke) { $0.types.contains("sync-finished") }
                    try await Task.sleep(for: .milliseconds(200))
                    #expect(await spoke.node.syncEngine!.syncOnce().succeeded)
                    let seen = try await log.types
                    #expect(seen.contains("sync-pull-in-progress"))
                    #expect(seen.contains("sync-finished"))
                }
            }
        }
    }

    @Test func waitForReturnsAfterAWriteAndTimesOutForAnIdThatNeverComes() async throws {
        try await withTemporaryDirectory { dir in
            try await withNode(dataDirectory: dir + "/node") { node in
                let client = TributaryClient(url: node.baseURL, apiToken: node.apiToken)
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await client.follow { _ in true } }
                    let range = try #require(try await client.write(notes(0..<10)))
                    #expect(range == 1...10)
                    try await client.waitFor(timeout: .seconds(30))
                    #expect(client.processed >= 10)
                    #expect(client.cached(EntityKey(.notes, "ws3"))?.value(forKey: "title") == .string("note 3"))
                    await #expect(throws: ClientError.self) {
                        try await client.waitFor(maxKnownEntityChangeId: 1_000_000, timeout: .milliseconds(300))
                    }
                    group.cancelAll()
                }
                await client.close()
            }
        }
    }

    @Test func badFramesGetAnErrorAndMissingAuthIsRefused() async throws {
        try await withTemporaryDirectory { dir in
            try await withNode(dataDirectory: dir + "/node") { node in
                let log = try await rawSocket(
                    node, query: "",
                    send: [
                        "not json", #"{"type":"dance"}"#, #"{"type":"ping","lastEntityChangeId":"x"}"#,
                        #"{"type":"ping"}"#,
                    ]
                ) { $0.types.filter { $0 == "error" }.count >= 3 && $0.types.contains("ping") }
                #expect(log.types.filter { $0 == "error" }.count == 3)
                await #expect(throws: (any Error).self) {
                    _ = try await rawSocket(node, token: "wrong") { _ in true }
                }
                let plain = try await node.request(.GET, "/ws")
                #expect(plain.status == 401)
                // A frame larger than the limit closes the socket instead of being read.
                let big = try await rawSocket(node, send: [String(repeating: "x", count: 100_000)]) { _ in false }
                #expect(!big.types.contains("error"))
            }
        }
    }
}
