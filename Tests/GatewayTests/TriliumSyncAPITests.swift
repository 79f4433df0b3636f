import EventLog
import Foundation
import NIOHTTP1
import Testing
import Tributary
import TributaryCore
import TributaryTesting

@Suite(.timeLimit(.minutes(2))) struct TriliumSyncAPITests {
    @Test func aTriliumClientPushesPullsFinishesAndChecks() async throws {
        try await withTemporaryDirectory { dir in
            try await withNode(dataDirectory: dir + "/node") { node in
                var client = TriliumClient(node, instanceId: "clientAAAAAA")
                let status = try await node.request(.GET, "/api/setup/status")
                #expect(status.status == 200)
                #expect(try JSONParser.parseObject(status.body)["syncVersion"] == .number(36))
                let login = try await client.login()
                #expect(login["instanceId"] == .string(node.node.store.log.instanceId))
                #expect(login["maxEntityChangeId"] == .number(0))

                // 2600 records are ~2 MB of JSON: three 1 MB text/plain pages.
                let records = SampleEvents(seed: 41).records(2600)
                let pushes = try await client.push(records)
                #expect(pushes.count == 3)
                #expect(pushes.allSatisfy { $0.status == 204 })
                #expect(pushes.last?.header("trilium-max-entity-change-id") == "2600")
                #expect(node.node.store.log.head == 2600)

                // Another client pulls everything from 0.
                var other = TriliumClient(node, instanceId: "clientBBBBBB")
                _ = try await other.login()
                let pulled = try await other.pullAll()
                #expect(pulled.last == 2600)
                #expect(pulled.pages == 4)  // 1000 + 1000 + 600, then an empty page
                #expect(pulled.records.map(\.change.changeId) == records.map(\.change.changeId))
                #expect(pulled.records.map(\.entity) == records.map(\.entity))
                // Received changes carry the pusher's stamp (§4.4).
                #expect(pulled.records.allSatisfy { $0.change.instanceId == "clientAAAAAA" })

                let finished = try await node.request(.POST, "/api/sync/finished", headers: other.sessionHeaders)
                #expect(finished.status == 204)
                let check = try await node.request(.GET, "/api/sync/check", headers: other.sessionHeaders)
                #expect(check.status == 200)
                let object = try JSONParser.parseObject(check.body)
                #expect(object["maxEntityChangeId"] == .number(2600))
                var served: [String: [String: String]] = [:]
                for member in try #require(object["entityHashes"]?.objectValue) {
                    served[member.key] = Dictionary(
                        uniqueKeysWithValues: (member.value.objectValue ?? [:]).map {
                            ($0.key, $0.value.stringValue ?? "")
                        })
                }
                #expect(served == expectedDigests(records))
            }
        }
    }

    /// `--max-push-mib`: a paged push past the limit is refused with 413 naming the option, and
    /// nothing of it is written; one within it is applied.
    @Test func aPagedPushPastTheConfiguredLimitIsRefused() async throws {
        try await withTemporaryDirectory { dir in
            try await withNode(dataDirectory: dir + "/node", maxPushBytes: 1 << 20) { node in
                var client = TriliumClient(node, instanceId: "clientAAAAAA")
                _ = try await client.login()
                // ~2 MB of JSON in 256 KB pages: the fifth page passes 1 MiB.
                let pushes = try await client.push(SampleEvents(seed: 43).records(2600), pageSize: 256_000)
                let refused = try #require(pushes.first { $0.status != 204 })
                #expect(refused.status == 413)
                #expect(refused.text.contains("--max-push-mib"), "\(refused.text)")
                #expect(node.node.store.log.head == 0)

                let small = try await client.push(SampleEvents(seed: 44).records(600), pageSize: 256_000)
                #expect(small.count > 1 && small.allSatisfy { $0.status == 204 })
                #expect(node.node.store.log.head == 600)
            }
        }
    }

    @Test func theCallersOwnChangesAreSkippedButTheCursorAdvances() async throws {
        try await withTemporaryDirectory { dir in
            try await withNode(dataDirectory: dir + "/node") { node in
                var client = TriliumClient(node, instanceId: "clientAAAAAA")
                _ = try await client.login()
                _ = try await client.push(SampleEvents(seed: 42).records(1500))
                let own = try await client.changed(after: 0)
                #expect(own.records.isEmpty)
                #expect(own.last == 1500)
                // A local write is not the caller's: it comes through, after the skipped ones.
                let write = try await node.request(
                    .POST, "/api/changes", headers: [node.bearer],
                    body: Array(#"[{"entityName":"notes","entityId":"local000001","entity":{"title":"here"}}]"#.utf8))
                #expect(write.status == 200)
                let next = try await client.changed(after: 0)
                #expect(next.records.map(\.change.entityId) == ["local000001"])
                #expect(next.ids == [1501])
            }
        }
    }

    @Test func pullsAreCompactedToEachEntitysLatestChange() async throws {
        try await withTemporaryDirectory { dir in
            try await withNode(dataDirectory: dir + "/node") { node in
                var client = TriliumClient(node, instanceId: "clientAAAAAA")
                _ = try await client.login()
                let ids = (0..<3).map { "note\($0)000000" }
                for round in 0..<3 {
                    let body =
                        "["
                        + ids.map { #"{"entityName":"notes","entityId":"\#($0)","entity":{"title":"v\#(round)"}}"# }
                        .joined(separator: ",") + "]"
                    #expect(
                        try await node.request(.POST, "/api/changes", headers: [node.bearer], body: Array(body.utf8))
                            .status == 200)
                }
                let pulled = try await client.pullAll()
                #expect(pulled.records.count == 3)
                #expect(
                    try pulled.records.map { try $0.entity!.object()["title"] } == [
                        .string("v2"), .string("v2"), .string("v2"),
                    ])
                #expect(pulled.last == 9)
            }
        }
    }

    @Test func loginFailuresAnswerLikeTrilium() async throws {
        try await withTemporaryDirectory { dir in
            try await withNode(dataDirectory: dir + "/node") { node in
                let client = TriliumClient(node)
                let wrongSecret = try await client.loginRequest(secret: "not the secret")
                #expect(wrongSecret.status == 400)
                #expect(wrongSecret.text.contains("Sync login credentials are incorrect"))
                let old = UTCDateTime(millisecondsSinceEpoch: UTCDateTime.now().millisecondsSinceEpoch - 6 * 60_000)
                let stale = try await client.loginRequest(timestamp: old.description)
                #expect(stale.status == 401)
                #expect(stale.text.contains("Auth request time is out of sync"))
                let version = try await client.loginRequest(syncVersion: 35)
                #expect(version.status == 400)
                #expect(version.text.contains("Non-matching sync versions, local is version 36, remote is 35"))
                let garbage = try await node.request(.POST, "/api/login/sync", body: Array("{not json".utf8))
                #expect(garbage.status == 400)
                #expect(wrongSecret.header("set-cookie") == nil)
                // A forged cookie is no session.
                let forged = try await node.request(
                    .GET, "/api/sync/check", headers: [("Cookie", "trilium.sid=forged; Path=/")])
                #expect(forged.status == 401)
                #expect(forged.text == "Logged in session not found")
            }
        }
    }

    @Test func aSectorRequeueReissuesWithThisNodesInstance() async throws {
        try await withTemporaryDirectory { dir in
            try await withNode(dataDirectory: dir + "/node") { node in
                var client = TriliumClient(node, instanceId: "clientAAAAAA")
                _ = try await client.login()
                let records = SampleEvents(seed: 43).records(400)
                _ = try await client.push(records)
                let sector = "A"
                let inSector = Set(
                    records.filter { $0.change.entityName == .notes && $0.change.entityId.hasPrefix(sector) }.map(
                        \.change.entityId))
                let queued = try await node.request(
                    .POST, "/api/sync/queue-sector/notes/\(sector)", headers: client.sessionHeaders)
                #expect(queued.status == 204)
                // The pusher now receives its own sector back: re-issued, stamped with the node.
                let back = try await client.changed(after: 400)
                #expect(Set(back.records.map(\.change.entityId)) == inSector)
                #expect(back.records.allSatisfy { $0.change.instanceId == node.node.store.log.instanceId })
                #expect(Set(back.records.map(\.change.changeId)).isDisjoint(with: records.map(\.change.changeId)))
                let bad = try await node.request(
                    .POST, "/api/sync/queue-sector/widgets/A", headers: client.sessionHeaders)
                #expect(bad.status == 400)
            }
        }
    }

    @Test func aBlobSectorRequeueAlsoReissuesWhatPointsAtItsBlobs() async throws {
        try await withTemporaryDirectory { dir in
            try await withNode(dataDirectory: dir + "/node") { node in
                var client = TriliumClient(node, instanceId: "clientAAAAAA")
                _ = try await client.login()
                let records = SampleEvents(seed: 44).records(600)
                _ = try await client.push(records)
                let sector = "B"
                // The latest row of each entity, as the node holds it.
                var latest: [EntityKey: ChangeRecord] = [:]
                for record in records { latest[record.change.key] = record }
                let expected = Set(
                    latest.values.filter { record in
                        let blobId = record.entity?.value(forKey: "blobId")?.stringValue
                        switch record.change.entityName {
                        case .blobs: return record.change.entityId.hasPrefix(sector)
                        case .notes, .attachments, .revisions:
                            return !record.change.isErased && blobId?.hasPrefix(sector) == true
                        default: return false
                        }
                    }.map(\.change.key))
                #expect(expected.contains { $0.name != .blobs })
                let queued = try await node.request(
                    .POST, "/api/sync/queue-sector/blobs/\(sector)", headers: client.sessionHeaders)
                #expect(queued.status == 204)
                let back = try await client.changed(after: 600)
                #expect(Set(back.records.map(\.change.key)) == expected)
            }
        }
    }

    @Test func syncSeedAndStats() async throws {
        try await withTemporaryDirectory { dir in
            try await withNode(dataDirectory: dir + "/node") { node in
                let credential = Data("dummy:\(node.apiToken)".utf8).base64EncodedString()
                let seed = try await node.request(.GET, "/api/setup/sync-seed", headers: [("trilium-cred", credential)])
                #expect(seed.status == 200)
                let options = try #require(try JSONParser.parseObject(seed.body)["options"])
                #expect(options.jsonBytes.count > 0)
                #expect(
                    String(decoding: options.jsonBytes, as: UTF8.self).contains(node.node.credentials.documentSecret))
                let wrong = try await node.request(
                    .GET, "/api/setup/sync-seed",
                    headers: [("trilium-cred", Data("dummy:nope".utf8).base64EncodedString())])
                #expect(wrong.status == 401)
                let stats = try await node.request(.GET, "/api/sync/stats")
                #expect(stats.status == 200)
            }
        }
    }
}
