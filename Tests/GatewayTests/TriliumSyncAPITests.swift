import EventLog
import Foundation
import NIOHTTP1
import Testing
import Tributary
import TributaryCore
import TributaryTesting

@Suite(.timeLimit(.minutes(3))) struct TriliumSyncAPITests {
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

    @Test func setupSyncSeedStatsAndStatusAnswerWithTheirFields() async throws {
        try await withTemporaryDirectory { dir in
            try await withNode(dataDirectory: dir + "/node") { node in
                let credential = Data("dummy:\(node.apiToken)".utf8).base64EncodedString()
                let seed = try await node.request(.GET, "/api/setup/sync-seed", headers: [("trilium-cred", credential)])
                #expect(seed.status == 200)
                let seedBody = try JSONParser.parseObject(seed.body)
                #expect(seedBody["syncVersion"] == .number(36))
                let options = try #require(
                    seedBody["options"].flatMap { value -> [JSONValue]? in
                        guard case .array(let elements) = value else { return nil }
                        return elements
                    })
                let named = Dictionary(
                    uniqueKeysWithValues: options.compactMap { option -> (String, String)? in
                        guard let object = option.objectValue, let name = object["name"]?.stringValue,
                            let value = object["value"]?.stringValue
                        else { return nil }
                        return (name, value)
                    })
                #expect(
                    named == [
                        "documentId": node.node.credentials.documentId,
                        "documentSecret": node.node.credentials.documentSecret,
                    ])
                let wrong = try await node.request(
                    .GET, "/api/setup/sync-seed",
                    headers: [("trilium-cred", Data("dummy:nope".utf8).base64EncodedString())])
                #expect(wrong.status == 401)

                let setup = try await node.request(.GET, "/api/setup/status")
                #expect(setup.status == 200)
                #expect(
                    try JSONParser.parseObject(setup.body)
                        == ["isInitialized": .bool(true), "schemaExists": .bool(true), "syncVersion": .number(36)])
                let stats = try await node.request(.GET, "/api/sync/stats")
                #expect(stats.status == 200)
                let statsBody = try JSONParser.parseObject(stats.body)
                #expect(statsBody["initialized"] == .bool(true))
                #expect(statsBody["outstandingPullCount"]?.intValue != nil, "\(stats.text)")

                var client = TriliumClient(node)
                _ = try await client.login()
                let checked = try await node.request(
                    .POST, "/api/sync/check-entity-changes", headers: client.sessionHeaders)
                #expect(checked.status == 204)

                // /api/status: the head, each view's checkpoint and lag, the version.
                try await post(node, notes(0..<3, prefix: "status"))
                try await node.node.store.projections!.waitFor(3, timeout: .seconds(30))
                let status = try await node.request(.GET, "/api/status", headers: [node.bearer])
                #expect(status.status == 200)
                let object = try JSONParser.parseObject(status.body)
                #expect(object["head"] == .number(3))
                #expect(object["version"] == .string(TributaryVersion.current))
                #expect(object["instanceId"] == .string(node.node.store.log.instanceId))
                #expect(object["syncVersion"] == .number(36))
                let views = try #require(object["views"]?.objectValue)
                #expect(views.members.map(\.key) == ["entity_changes", "trilium"])
                for view in views.members {
                    #expect(view.value.objectValue == ["checkpoint": .number(3), "lag": .number(0)], "\(view.key)")
                }
            }
        }
    }

    /// `GET /api/changes`: each line is what `tributary replay` prints for that change
    /// (`{"id","entityChange","entity"}`), `next` continues after the page, `limit` bounds it,
    /// and `entity` keeps one entity name (the cursor still moves past the others).
    @Test func theAuditTrailPagesThroughEveryChangeAsReplayPrintsThem() async throws {
        try await withTemporaryDirectory { dir in
            try await withNode(dataDirectory: dir + "/node") { node in
                try await post(node, notes(0..<20, prefix: "audit"))
                let attributes = (0..<10).map {
                    #"{"entityName":"attributes","entityId":"attr\#($0)000000","entity":{"noteId":"n","type":"label","name":"a\#($0)"}}"#
                }
                let erasures = (0..<2).map {
                    #"{"entityName":"notes","entityId":"audit\#($0)","isErased":1}"#
                }
                for batch in [attributes, erasures] {
                    let body = Array(("[" + batch.joined(separator: ",") + "]").utf8)
                    let written = try await node.request(.POST, "/api/changes", headers: [node.bearer], body: body)
                    #expect(written.status == 200, "\(written.text)")
                }
                let log = node.node.store.log
                #expect(log.head == 32)

                func page(_ query: String) async throws -> (lines: [JSONObject], next: Int) {
                    let result = try await node.request(.GET, "/api/changes?" + query, headers: [node.bearer])
                    #expect(result.status == 200, "\(result.text)")
                    let object = try JSONParser.parseObject(result.body)
                    guard case .array(let elements)? = object["changes"], let next = object["next"]?.intValue else {
                        throw TestFailure("no changes or next: \(result.text.prefix(200))")
                    }
                    return (try elements.map { try #require($0.objectValue) }, next)
                }

                var cursor = 0
                var all: [JSONObject] = []
                var pages = 0
                while true {
                    let (lines, next) = try await page("after=\(cursor)&limit=7")
                    pages += 1
                    #expect(lines.count == min(7, 32 - cursor))
                    #expect(next == (lines.last?["id"]?.intValue ?? cursor))
                    if lines.isEmpty { break }
                    all += lines
                    cursor = next
                }
                #expect(pages == 6)
                #expect(all.compactMap { $0["id"]?.intValue } == Array(1...32))
                for line in all {
                    let id = EntityChangeID(UInt64(try #require(line["id"]?.intValue)))
                    let logged = try #require(try log.change(at: id))
                    var replayed = JSONWriter()
                    logged.writeAudit(to: &replayed)
                    #expect(JSONValue.object(line) == (try JSONParser.parse(replayed.bytes)), "id \(id)")
                    let keys = logged.change.isErased ? ["id", "entityChange"] : ["id", "entityChange", "entity"]
                    #expect(line.members.map(\.key) == keys, "id \(id)")
                    #expect(line["entityChange"]?.objectValue?["id"] == line["id"])
                    let record = try ChangeRecord(wireJSON: JSONValue.object(line).jsonBytes)
                    #expect(record == logged.record, "id \(id)")
                }
                #expect(all.suffix(2).allSatisfy { $0["entityChange"]?.objectValue?["isErased"] == .number(1) })

                let whole = try await page("")
                #expect(whole.lines == all)
                #expect(whole.next == 32)

                let first = try await page("entity=attributes&limit=4")
                #expect(first.lines.compactMap { $0["id"]?.intValue } == [21, 22, 23, 24])
                #expect(first.next == 24)
                let rest = try await page("entity=attributes&after=24")
                #expect(rest.lines.compactMap { $0["id"]?.intValue } == Array(25...30))
                #expect(
                    rest.lines.allSatisfy {
                        $0["entityChange"]?.objectValue?["entityName"] == .string("attributes")
                    })
                #expect(rest.next == 32)
                let none = try await page("entity=attributes&after=32")
                #expect(none.lines.isEmpty && none.next == 32)
            }
        }
    }

    /// A pull page holds at most about 1 MB: with rows of ~200 KB it holds a handful, not 1000,
    /// and a record larger than 1 MB comes alone in its page.
    @Test func pullPagesStopNearOneMegabyteAndABigRecordComesAlone() async throws {
        try await withTemporaryDirectory { dir in
            try await withNode(dataDirectory: dir + "/node") { node in
                func blob(_ i: Int, bytes: Int) -> ChangeRecord {
                    let id = "blob\(i)" + String(repeating: "0", count: 8)
                    let change = EntityChange(
                        entityName: .blobs, entityId: id, hash: "hashBLOB\(i % 10)\(i / 10)",
                        changeId: RandomID.make(), instanceId: "remoteInst01",
                        utcDateChanged: UTCDateTime(millisecondsSinceEpoch: 1_735_689_600_000 + Int64(i)))
                    let content = String(repeating: "QUJD", count: bytes / 4)
                    return ChangeRecord(
                        change: change, entity: EntityRow(["blobId": .string(id), "content": .string(content)]))
                }
                // Ten rows of 200 KB, one of 1.5 MB, three small ones.
                var records = (0..<10).map { blob($0, bytes: 200_000) }
                records.append(blob(10, bytes: 1_500_000))
                records += (11..<14).map { blob($0, bytes: 100) }
                _ = try await node.node.store.applier.applyRemote(records, from: .recordInstance)

                var client = TriliumClient(node)
                _ = try await client.login()
                var cursor = 0
                var pages: [(ids: [Int], bytes: Int)] = []
                while true {
                    let result = try await node.request(
                        .GET, "/api/sync/changed?instanceId=\(client.instanceId)&lastEntityChangeId=\(cursor)",
                        headers: client.sessionHeaders)
                    #expect(result.status == 200)
                    let object = try JSONParser.parseObject(result.body)
                    guard case .array(let elements)? = object["entityChanges"] else { throw TestFailure("no page") }
                    if elements.isEmpty { break }
                    let ids = elements.compactMap { $0.objectValue?["entityChange"]?.objectValue?["id"]?.intValue }
                    pages.append((ids, result.body.count))
                    cursor = try #require(object["lastEntityChangeId"]?.intValue)
                    if pages.count > 14 { break }
                }
                #expect(pages.flatMap(\.ids) == Array(1...14))
                // Full pages of 200 KB rows: a few changes, near 1 MB.
                for page in pages.prefix(2) {
                    #expect(page.ids.count > 1 && page.ids.count < 10, "\(page.ids)")
                    #expect(page.bytes > 800_000 && page.bytes < 1_300_000, "\(page.bytes) bytes")
                }
                let big = try #require(pages.first { $0.ids.contains(11) })
                #expect(big.ids == [11])
                #expect(big.bytes > 1_500_000)
                #expect(pages.last?.ids == [12, 13, 14])
            }
        }
    }
}
