import EventLog
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Projections
import Sync
import TributaryCore

/// Tributary's own API (bearer token): local writes, audit replay, status, metrics, health.
extension Gateway {
    func addTributaryRoutes(_ router: Router<BasicRequestContext>) {
        router.get("/healthz") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: "ok\n")))
        }
        router.get("/metrics") { request, _ in
            try requireToken(request)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(string: metricsText())))
        }
        router.post("/api/changes") { request, _ in try await postChanges(request) }
        router.get("/api/changes") { request, _ in try getChanges(request) }
        router.get("/api/status") { request, _ in try status(request) }
        router.post("/api/verify") { request, _ in try await runVerify(request) }
        router.post("/api/toast") { request, _ in try await toast(request) }
        router.post("/api/rebuild") { request, _ in try await rebuild(request) }
    }

    /// `POST /api/verify` — checks the log and the views in this process; an unsound result is
    /// also announced to every WebSocket as `consistency-checks-failed`, as Trilium does.
    func runVerify(_ request: Request) async throws -> Response {
        try requireToken(request)
        guard let verify else { throw GatewayError.badRequest("this node has no verifier") }
        let outcome = try await verify()
        if !outcome.isSound { statusMessages.broadcast(#"{"type":"consistency-checks-failed"}"#) }
        return json(.object(["sound": .bool(outcome.isSound), "report": .string(outcome.text)]))
    }

    /// `POST /api/toast` — `{"message": "…"}` shown to every connected UI as Trilium's `toast`.
    func toast(_ request: Request) async throws -> Response {
        try requireToken(request)
        let object: JSONObject
        do {
            object = try JSONParser.parseObject(try await body(request))
        } catch let error as CoreError {
            throw GatewayError.badRequest("\(error)")
        }
        guard case .string(let message)? = object["message"], !message.isEmpty, message.count <= 2000 else {
            throw GatewayError.badRequest("'message' must be a string of 1 to 2000 characters")
        }
        let text: JSONValue = .object(["type": .string("toast"), "message": .string(message)])
        statusMessages.broadcast(String(decoding: text.jsonBytes, as: UTF8.self))
        return Response(status: .noContent)
    }

    /// `POST /api/rebuild` — `{"views":[…]}` (all when absent or empty): `tributary rebuild`
    /// inside the running node. Writes go on meanwhile; the views catch up after the swap, and
    /// every WebSocket is told `reload-frontend`. It does not overlap a sync cycle.
    func rebuild(_ request: Request) async throws -> Response {
        try requireToken(request)
        guard let rebuildViews, let projections else { throw GatewayError.badRequest("this node has no views") }
        let bytes = try await body(request)
        var names: [String] = []
        if !bytes.isEmpty {
            let object: JSONObject
            do {
                object = try JSONParser.parseObject(bytes)
            } catch {
                throw GatewayError.badRequest("\(error)")
            }
            switch object["views"] {
            case nil: break
            case .array(let values)?:
                for value in values {
                    guard case .string(let name) = value else {
                        throw GatewayError.badRequest("'views' must be an array of view names")
                    }
                    names.append(name)
                }
            default: throw GatewayError.badRequest("'views' must be an array of view names")
            }
        }
        let selected: [any Projector]
        do {
            selected = try projections.projectors(named: names)
        } catch let error as ProjectionError {
            throw GatewayError.badRequest(error.message)
        }
        try await rebuildViews(names)
        // Each rebuilt view and the id it was rebuilt up to (or has reached since).
        let checkpoints = projections.checkpoints
        var rebuilt = JSONObject()
        for projector in selected {
            rebuilt[projector.name] = .number(Int(checkpoints[projector.name]?.rawValue ?? 0))
        }
        return json(.object(["rebuilt": .object(rebuilt)]))
    }

    /// `POST /api/changes` — a batch of local writes `[{"entityName","entityId","entity"}]` or
    /// erasures `[{"entityName","entityId","isErased":1}]`, all or nothing.
    func postChanges(_ request: Request) async throws -> Response {
        try requireToken(request)
        let bytes = try await body(request)
        let writes: [LocalWrite]
        do {
            writes = try LocalWrite.decodeBatch(bytes)
        } catch {
            throw GatewayError.badRequest("\(error)")
        }
        let report: ApplyReport
        do {
            report = try await server.applier.applyLocal(writes)
        } catch let error as ApplyError {
            throw GatewayError.badRequest("[\(error.index)]: \(error.cause)")
        }
        return json(
            .object([
                "firstId": report.range.map { .number(Int($0.lowerBound.rawValue)) } ?? .null,
                "lastId": report.range.map { .number(Int($0.upperBound.rawValue)) } ?? .null,
                "applied": .number(report.applied), "ignored": .number(report.ignored),
            ]))
    }

    /// `GET /api/changes?after=&limit=&entity=` — the audit trail, a page at a time.
    func getChanges(_ request: Request) throws -> Response {
        try requireToken(request)
        let after = try idParameter(request, "after", required: false) ?? .zero
        var limit = 1000
        if let text = request.uri.queryParameters["limit"] {
            guard let value = Int(text), (1...10_000).contains(value) else {
                throw GatewayError.badRequest("'limit' must be an integer from 1 to 10000, got '\(text.prefix(20))'")
            }
            limit = value
        }
        var name: EntityName?
        if let text = request.uri.queryParameters["entity"] {
            do {
                name = try EntityName(validating: String(text))
            } catch {
                throw GatewayError.badRequest("\(error)")
            }
        }
        var w = JSONWriter(capacity: 1 << 16)
        w.raw("{\"changes\":[")
        var count = 0
        var cursor = after
        // Scan at most a few pages when filtering, so one request stays bounded.
        var budget = 20
        while count < limit, budget > 0 {
            budget -= 1
            var visited = 0
            try log.forEachChange(after: cursor, limit: 1000) { logged in
                guard count < limit else { return }
                visited += 1
                cursor = logged.id
                if let name, logged.change.entityName != name { return }
                if count > 0 { w.raw(",") }
                logged.writeAudit(to: &w)
                count += 1
            }
            if visited == 0 { break }
        }
        w.raw("],\"next\":")
        w.number(cursor.rawValue)
        w.raw("}")
        return json(w.bytes)
    }

    /// `GET /api/status` — head id, per-view lag, per-peer checkpoints, version.
    func status(_ request: Request) throws -> Response {
        try requireToken(request)
        let head = log.head
        var views = JSONObject()
        for (name, checkpoint) in (projections?.checkpoints ?? [:]).sorted(by: { $0.key < $1.key }) {
            views[name] = .object([
                "checkpoint": .number(Int(checkpoint.rawValue)),
                "lag": .number(Int(head.rawValue - min(head.rawValue, checkpoint.rawValue))),
            ])
        }
        var peerStatus = JSONObject()
        for peer in peers() {
            peerStatus[peer.url] = .object([
                "lastSyncedPush": .number(Int(peer.lastSyncedPush.rawValue)),
                "lastSyncedPull": .number(Int(peer.lastSyncedPull.rawValue)),
                "lastSuccess": peer.lastSuccess.map { .string($0.description) } ?? .null,
                "lastError": peer.lastError.map { .string($0) } ?? .null, "pushed": .number(peer.pushed),
                "pulled": .number(peer.pulled), "cycles": .number(peer.cycles), "running": .bool(peer.running),
                "outstandingPullCount": .number(peer.outstandingPullCount),
                "fullHistory": peer.fullHistory.map { .bool($0) } ?? .null,
            ])
        }
        let index = log.indexStatus
        let sockets = statusMessages.cursors
        return json(
            .object([
                "version": .string(TributaryVersion.current), "instanceId": .string(log.instanceId),
                "head": .number(Int(head.rawValue)), "views": .object(views), "peers": .object(peerStatus),
                "index": .object([
                    "checkpoint": .number(Int(index.checkpoint.rawValue)), "unindexed": .number(index.overlayCount),
                ]),
                "syncVersion": .number(configuration.syncVersion),
                "webSockets": .object([
                    "open": .number(sockets.count),
                    "slowestCursor": sockets.compactMap { $0 }.min().map { .number(Int($0.rawValue)) } ?? .null,
                ]),
            ]))
    }
}
