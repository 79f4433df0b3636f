import Crypto
import Foundation
import NIOHTTP1
import Tributary
import TributaryCore
import TributaryTesting

/// Trilium's client side of the sync protocol, written from trilium-protocol.md §3, to drive a
/// node exactly as an unmodified Trilium client would.
struct TriliumClient {
    let node: RunningNode
    let documentSecret: String
    let instanceId: String
    var syncVersion = 36
    var cookie: String?

    init(_ node: RunningNode, instanceId: String = RandomID.make()) {
        self.node = node
        documentSecret = node.node.credentials.documentSecret
        self.instanceId = instanceId
    }

    static func hmac(_ timestamp: String, secret: String) -> String {
        Data(HMAC<SHA256>.authenticationCode(for: Data(timestamp.utf8), using: SymmetricKey(data: Data(secret.utf8))))
            .base64EncodedString()
    }

    func loginRequest(timestamp: String = UTCDateTime.now().description, secret: String? = nil, syncVersion: Int? = nil)
        async throws -> HTTPResult
    {
        let body: JSONValue = .object([
            "timestamp": .string(timestamp), "syncVersion": .number(syncVersion ?? self.syncVersion),
            "hash": .string(TriliumClient.hmac(timestamp, secret: secret ?? documentSecret)),
        ])
        return try await node.request(
            .POST, "/api/login/sync", headers: [("Content-Type", "application/json")], body: body.jsonBytes)
    }

    /// Logs in and keeps the session cookie (echoing the whole Set-Cookie value, as Trilium does).
    mutating func login() async throws -> JSONObject {
        let result = try await loginRequest()
        guard result.status == 200, let setCookie = result.header("set-cookie") else {
            throw TestFailure("login failed: \(result.status) \(result.text)")
        }
        cookie = setCookie
        return try JSONParser.parseObject(result.body)
    }

    var sessionHeaders: [(String, String)] { cookie.map { [("Cookie", $0)] } ?? [] }

    /// Pushes records in Trilium's paging: the serialized body cut into `pageSize`-character pages.
    func push(_ records: [ChangeRecord], pageSize: Int = 1_000_000) async throws -> [HTTPResult] {
        var w = JSONWriter()
        w.raw("{\"entities\":[")
        for (i, r) in records.enumerated() {
            if i > 0 { w.raw(",") }
            r.writeWire(to: &w, id: EntityChangeID(UInt64(i + 1)))
        }
        w.raw("],\"instanceId\":")
        w.string(instanceId)
        w.raw("}")
        let body = w.bytes
        let pages = stride(from: 0, to: body.count, by: pageSize).map {
            Array(body[$0..<min(body.count, $0 + pageSize)])
        }
        let requestId = RandomID.make(length: 10)
        var results: [HTTPResult] = []
        for (i, page) in pages.enumerated() {
            var headers = sessionHeaders
            headers += [
                ("Content-Type", pages.count == 1 ? "application/json" : "text/plain"), ("pageCount", "\(pages.count)"),
                ("pageIndex", "\(i)"), ("requestId", pages.count == 1 ? "n/a" : requestId),
            ]
            results.append(
                try await node.request(
                    .PUT, "/api/sync/update?logMarkerId=\(RandomID.make(length: 10))", headers: headers, body: page))
        }
        return results
    }

    /// One `GET /api/sync/changed`.
    func changed(after: UInt64, as caller: String? = nil) async throws -> (
        records: [ChangeRecord], ids: [UInt64], last: UInt64, outstanding: Int
    ) {
        let result = try await node.request(
            .GET, "/api/sync/changed?instanceId=\(caller ?? instanceId)&lastEntityChangeId=\(after)&logMarkerId=abc",
            headers: sessionHeaders)
        guard result.status == 200 else { throw TestFailure("changed: \(result.status) \(result.text)") }
        let object = try JSONParser.parseObject(result.body)
        guard case .array(let elements)? = object["entityChanges"] else { throw TestFailure("no entityChanges") }
        var records: [ChangeRecord] = []
        var ids: [UInt64] = []
        for element in elements {
            records.append(try ChangeRecord(wireJSON: element.jsonBytes))
            ids.append(UInt64(element.objectValue?["entityChange"]?.objectValue?["id"]?.intValue ?? -1))
        }
        return (
            records, ids, UInt64(object["lastEntityChangeId"]?.intValue ?? -1),
            object["outstandingPullCount"]?.intValue ?? -1
        )
    }

    /// Pulls everything after `after`, page by page, until a page comes back empty.
    func pullAll(after: UInt64 = 0, as caller: String? = nil) async throws -> (
        records: [ChangeRecord], last: UInt64, pages: Int
    ) {
        var cursor = after
        var all: [ChangeRecord] = []
        var pages = 0
        while true {
            let page = try await changed(after: cursor, as: caller)
            pages += 1
            cursor = page.last
            if page.records.isEmpty { return (all, cursor, pages) }
            all += page.records
        }
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Sector digests computed from records without the node (Trilium's algorithm, §3.10).
func expectedDigests(_ records: [ChangeRecord]) -> [String: [String: String]] {
    var latest: [EntityKey: ChangeRecord] = [:]
    for r in records where r.change.isSynced && r.change.entityName != .noteReordering {
        latest[r.change.key] = r
    }
    // Trilium erases the blobs no note, attachment or revision points at before it hashes.
    var referenced = Set<String>()
    for (key, r) in latest where [.notes, .attachments, .revisions].contains(key.name) && !r.change.isErased {
        if case .string(let blobId)? = r.entity?.value(forKey: "blobId") { referenced.insert(blobId) }
    }
    var groups: [String: [String: [EntityChange]]] = [:]
    for (key, record) in latest {
        let change = record.change
        if key.name == .blobs && !change.isErased && !referenced.contains(key.id) { continue }
        groups[key.name.rawValue, default: [:]][String(key.id.prefix(1)), default: []].append(change)
    }
    return groups.mapValues { sectors in
        sectors.mapValues { changes in
            var text = ""
            for c in changes.sorted(by: { $0.entityId < $1.entityId }) { text += c.hash + (c.isErased ? "1" : "0") }
            return Data(Insecure.SHA1.hash(data: Data(text.utf8))).base64EncodedString()
        }
    }
}
