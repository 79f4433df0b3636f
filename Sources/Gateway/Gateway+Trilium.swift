import Crypto
import EventLog
import Foundation
import HTTPTypes
import Hummingbird
import Metrics
import NIOCore
import Sync
import TributaryCore

/// Trilium's sync server API (trilium-protocol.md §3), path for path.
extension Gateway {
    func addTriliumRoutes(_ router: Router<BasicRequestContext>) {
        router.get("/api/setup/status") { _, _ in
            json(
                .object([
                    "isInitialized": .bool(true), "schemaExists": .bool(true),
                    "syncVersion": .number(configuration.syncVersion),
                ]))
        }
        router.get("/api/sync/stats") { _, _ in
            // What this node, as a client, was told is left to pull (0 without a peer).
            let outstanding = peers().first?.outstandingPullCount ?? 0
            return json(.object(["initialized": .bool(true), "outstandingPullCount": .number(outstanding)]))
        }
        router.post("/api/sync/now") { request, _ in try await syncNowRoute(request) }
        router.get("/api/setup/sync-seed") { request, _ in try syncSeed(request) }
        router.post("/api/login/sync") { request, _ in try await login(request) }
        router.put("/api/sync/update") { request, _ in try await update(request) }
        router.get("/api/sync/changed") { request, _ in try changed(request) }
        router.post("/api/sync/finished") { request, _ in
            try requireSession(request)
            return noContent()
        }
        router.get("/api/sync/check") { request, _ in try await check(request) }
        router.post("/api/sync/check-entity-changes") { request, _ in
            // Trilium repairs entity_changes rows that lost their entity (or vice versa); an
            // append-only log cannot get into that state, so there is nothing to fix.
            try requireSession(request)
            return noContent()
        }
        router.post("/api/sync/queue-sector/:entityName/:sector") { request, context in
            try await queueSector(request, context)
        }
    }

    /// `POST /api/login/sync` — HMAC-SHA256 of the timestamp with the document secret.
    func login(_ request: Request) async throws -> Response {
        let object: JSONObject
        do {
            // Read before any credential is checked: a login is a few hundred bytes, and nobody
            // gets to make the server buffer and parse megabytes without the secret.
            object = try JSONParser.parseObject(try await body(request, limit: 16 << 10))
        } catch let error as CoreError {
            throw GatewayError.badRequest("the login body must be a JSON object: \(error)")
        }
        guard case .string(let timestamp)? = object["timestamp"] else {
            throw GatewayError.badRequest("'timestamp' (a string) is required")
        }
        // Trilium's order of checks (§3.5): the clock, then the version, then the secret.
        guard let sent = parseTimestamp(timestamp), abs(Date().timeIntervalSince(sent)) <= 300 else {
            throw GatewayError(
                .unauthorized,
                "Auth request time is out of sync, please check that both client and server have correct time. "
                    + "The difference between clocks has to be smaller than 5 minutes.")
        }
        // Trilium compares strictly (`===`): "36" or 36.0 is another version, not a 36.
        let version = object["syncVersion"]
        guard case .number(let versionText)? = version, Int(versionText) == configuration.syncVersion else {
            let remote = version.map { String(decoding: $0.jsonBytes, as: UTF8.self) } ?? "undefined"
            throw GatewayError.badRequest(
                "Non-matching sync versions, local is version \(configuration.syncVersion), remote is \(remote.prefix(40)). "
                    + "It is recommended to run same version of Trilium on both sides of sync.")
        }
        let expected = Data(
            HMAC<SHA256>.authenticationCode(
                for: Data(timestamp.utf8), using: SymmetricKey(data: Data(configuration.documentSecret.utf8)))
        ).base64EncodedString()
        guard case .string(let hash)? = object["hash"], constantTimeEqual(expected, hash) else {
            throw GatewayError.badRequest(
                "Sync login credentials are incorrect. It looks like you're trying to sync two different "
                    + "initialized documents which is not possible.")
        }
        let token = sessions.open()
        var response = json(
            .object([
                "instanceId": .string(log.instanceId), "maxEntityChangeId": .number(Int(log.head.rawValue)),
            ]))
        response.headers[.setCookie] =
            "\(Sessions.cookieName)=\(token); Path=/; HttpOnly; Max-Age=\(Int(Sessions.lifetime))"
        // Tributary's extension, offered to a client that asks beside its syncVersion; a plain
        // Trilium client never asks and never sees the header.
        if request.headers[HTTPField.Name(SyncPeer.historyHeader)!] == "full" {
            response.headers[HTTPField.Name(SyncPeer.historyHeader)!] = "full"
        }
        return response
    }

    /// Trilium's timestamps (`2025-04-19 10:11:12.345Z`) and ISO 8601 (`…T…Z`).
    func parseTimestamp(_ text: String) -> Date? {
        if let t = UTCDateTime(text) { return Date(timeIntervalSince1970: Double(t.millisecondsSinceEpoch) / 1000) }
        if let t = UTCDateTime(text.replacingOccurrences(of: "T", with: " ")) {
            return Date(timeIntervalSince1970: Double(t.millisecondsSinceEpoch) / 1000)
        }
        return nil
    }

    /// `PUT /api/sync/update` — a push, whole or in `pageCount` text pages.
    func update(_ request: Request) async throws -> Response {
        let owner = try requireSession(request)
        let pageCount = try intHeader(request, "pageCount") ?? 1
        let pageIndex = try intHeader(request, "pageIndex") ?? 0
        guard pageCount >= 1, pageCount <= 100_000, pageIndex >= 0, pageIndex < pageCount else {
            throw GatewayError.badRequest("pageIndex \(pageIndex) is out of range for pageCount \(pageCount)")
        }
        var bytes = try await body(request)
        if pageCount > 1 {
            guard let requestId = request.headers[HTTPField.Name("requestId")!], !requestId.isEmpty, requestId != "n/a"
            else { throw GatewayError.badRequest("a paged request needs a requestId header") }
            guard
                let whole = try uploads.add(
                    owner: owner, requestId: requestId, pageIndex: pageIndex, pageCount: pageCount, page: bytes)
            else { return noContent() }
            bytes = whole
        }
        let push: SyncUpdateBody
        do {
            push = try SyncUpdateBody(json: bytes)
        } catch {
            throw GatewayError.badRequest("\(error)")
        }
        do {
            let report = try await server.applier.applyRemote(push.records, from: .peer(instanceId: push.instanceId))
            // As Trilium's server does when a pushed batch applies a change (§4.1).
            if report.applied > 0 {
                statusMessages.broadcastSyncStatus("sync-pull-in-progress", lastSyncedPush: lastSyncedPush() ?? .zero)
            }
        } catch let error as ApplyError {
            throw GatewayError.badRequest("entities[\(error.index)]: \(error.cause)")
        }
        Counter(label: "tributary_sync_received_changes_total").increment(by: push.records.count)
        return noContent()
    }

    /// `POST /api/sync/now` — Trilium's "sync now" (bearer token here: Tributary has no UI
    /// sessions). Runs a cycle with the configured peer, or waits for the one running, and
    /// answers with Trilium's result shape.
    func syncNowRoute(_ request: Request) async throws -> Response {
        try requireToken(request)
        guard let syncNow else {
            return json(
                .object([
                    "success": .bool(false), "errorCode": .string("NOT_CONFIGURED"),
                    "message": .string("Sync not configured"),
                ]))
        }
        statusMessages.broadcastSyncStatus("sync-pull-in-progress", lastSyncedPush: lastSyncedPush() ?? .zero)
        let outcome = await syncNow()
        if let failure = outcome.failure {
            return json(.object(["success": .bool(false), "message": .string(failure.message)]))
        }
        return json(
            .object([
                "success": .bool(true), "pushed": .number(outcome.pushed), "pulled": .number(outcome.pulled),
            ]))
    }

    func intHeader(_ request: Request, _ name: String) throws(GatewayError) -> Int? {
        guard let text = request.headers[HTTPField.Name(name)!] else { return nil }
        guard let value = Int(text) else {
            throw .badRequest("the \(name) header must be an integer, got '\(text.prefix(20))'")
        }
        return value
    }

    /// `GET /api/sync/changed` — a page of the changes after the caller's cursor.
    func changed(_ request: Request) throws -> Response {
        try requireSession(request)
        let after = try idParameter(request, "lastEntityChangeId", required: true)!
        let instanceId = request.uri.queryParameters["instanceId"].map(String.init)
        // Tributary's full-history extension, beside Trilium's exact syncVersion: a plain
        // Trilium client never sends the header and gets compacted pages.
        let fullHistory = request.headers[HTTPField.Name(SyncPeer.historyHeader)!] == "full"
        let page = try server.changed(after: after, excludingInstance: instanceId, compacted: !fullHistory)
        var w = JSONWriter(capacity: 4096 + page.changes.count * 512)
        w.raw("{\"entityChanges\":")
        w.writeRecords(page.changes)
        w.raw(",\"lastEntityChangeId\":")
        w.number(page.lastEntityChangeId.rawValue)
        w.raw(",\"outstandingPullCount\":")
        w.number(page.outstandingPullCount)
        w.raw("}")
        var response = json(w.bytes)
        if fullHistory { response.headers[HTTPField.Name(SyncPeer.historyHeader)!] = "full" }
        return response
    }

    /// `GET /api/sync/check` — per entity name and sector, a digest of the entities' hashes.
    func check(_ request: Request) async throws -> Response {
        try requireSession(request)
        let digests = try await server.entityHashes()
        var hashes = JSONObject()
        for name in digests.keys.sorted() {
            var sectors = JSONObject()
            for sector in digests[name]!.keys.sorted() { sectors[sector] = .string(digests[name]![sector]!) }
            hashes[name.rawValue] = .object(sectors)
        }
        return json(.object(["entityHashes": .object(hashes), "maxEntityChangeId": .number(Int(log.head.rawValue))]))
    }

    /// `POST /api/sync/queue-sector/:entityName/:sector` — re-issue a sector's entities.
    func queueSector(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        try requireSession(request)
        // Trilium strips both parameters to [A-Za-z0-9_].
        func clean(_ s: String) -> String {
            String(
                s.unicodeScalars.filter {
                    $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_")
                })
        }
        let name = clean(try context.parameters.require("entityName"))
        let sector = clean(try context.parameters.require("sector"))
        guard let entityName = EntityName(rawValue: name), entityName != .noteReordering else {
            throw GatewayError.badRequest("unknown entity name '\(name.prefix(40))'")
        }
        guard sector.count == 1 else {
            throw GatewayError.badRequest("a sector is one character, got '\(sector.prefix(20))'")
        }
        _ = try await server.queueSector(entityName, sector: sector)
        return noContent()
    }

    /// `GET /api/setup/sync-seed` — the document's identity for a new client that knows the
    /// password (here: the API token), sent as `trilium-cred: base64("dummy:" + password)`.
    func syncSeed(_ request: Request) throws -> Response {
        guard let credential = request.headers[HTTPField.Name("trilium-cred")!],
            let decoded = Data(base64Encoded: credential).map({ String(decoding: $0, as: UTF8.self) }),
            let colon = decoded.firstIndex(of: ":"),
            constantTimeEqual(String(decoded[decoded.index(after: colon)...]), configuration.apiToken)
        else { throw GatewayError(.unauthorized, "Incorrect password") }
        func option(_ name: String, _ value: String) -> JSONValue {
            .object([
                "name": .string(name), "value": .string(value), "isSynced": .number(0),
                "utcDateModified": .string(UTCDateTime.now().description),
            ])
        }
        return json(
            .object([
                "options": .array([
                    option("documentId", configuration.documentId),
                    option("documentSecret", configuration.documentSecret),
                ]),
                "syncVersion": .number(configuration.syncVersion),
            ]))
    }
}
