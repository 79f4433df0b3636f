import EventLog
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket
import Synchronization
import TributaryCore

/// `GET /ws`: Trilium's WebSocket messages, plus a gap-free tail of the log.
///
/// Each socket has its own cursor. The first `ping` (or `?after=N`) sets it; the server then sends
/// every change after it from the log and goes on with each new commit, in `frontend-update`
/// messages whose ids only increase — no gap and no duplicate across the hand-over, because
/// "replay" and "live" are the same loop reading the log. Memory per socket is one frame: a
/// socket that does not read only falls behind (`fell-behind`), it never holds anyone up.
extension Gateway {
    static let pageLimit = 500
    /// A frame stops after the change that takes it past this many bytes of entities, so a
    /// socket's one frame in flight is small whatever the entities weigh.
    static let frameBytes = 256 << 10
    /// A live socket this far behind the head is told it fell behind.
    static let behindWindow: UInt64 = 5000

    /// Authorizes an upgrade request: the bearer token as a header or `?token=`.
    func webSocketUpgrade(_ request: HTTPRequest) -> ShouldUpgradeResult<
        WebSocketDataHandler<HTTP1WebSocketUpgradeChannel.Context>
    > {
        guard let path = request.path, path == "/ws" || path.hasPrefix("/ws?") else { return .dontUpgrade }
        let query = URLComponents(string: path)?.queryItems ?? []
        let token =
            request.headerFields[.authorization].flatMap { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : nil }
            ?? query.first(where: { $0.name == "token" })?.value
        guard let token, constantTimeEqual(token, configuration.apiToken) else { return .dontUpgrade }
        var start: EntityChangeID?
        var detail = FrameCache.Detail.trilium
        switch query.first(where: { $0.name == "rows" })?.value {
        case nil, "trilium"?: break
        case "full"?: detail = .full
        default: return .dontUpgrade
        }
        if let text = query.first(where: { $0.name == "after" })?.value {
            guard let value = UInt64(text), value <= EntityChangeID.maxWire.rawValue else { return .dontUpgrade }
            start = EntityChangeID(value)
        }
        let after = start
        let rows = detail
        return .upgrade([:]) { inbound, outbound, _ in
            try await self.serveSocket(inbound: inbound, outbound: outbound, after: after, detail: rows)
        }
    }

    /// The HTTP answer to a `/ws` request that was not upgraded.
    func webSocketRefusal(_ request: Request) throws -> Response {
        if (try? requireToken(request)) == nil,
            request.uri.queryParameters["token"].map({ constantTimeEqual(String($0), configuration.apiToken) }) != true
        {
            throw GatewayError.noToken
        }
        throw GatewayError.badRequest(
            "/ws needs a WebSocket upgrade; 'after' must be a non-negative integer and 'rows' trilium or full")
    }

    func serveSocket(
        inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, after: EntityChangeID?,
        detail: FrameCache.Detail
    ) async throws {
        let mailbox = Mailbox()
        let cursor = CursorBox(after)
        let registration = statusMessages.register(mailbox, cursor: cursor)
        defer { statusMessages.unregister(registration) }
        // Each commit wakes the writer directly: no task per socket waits on the log.
        let observation = log.observeCommits { _ in mailbox.signal() }
        defer { log.stopObserving(observation) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            // Reader: pings set the cursor (the first one only) and are answered.
            group.addTask {
                defer { mailbox.close() }
                for try await message in inbound.messages(maxSize: 64 << 10) {
                    guard case .text(let text) = message else {
                        mailbox.post(Self.errorMessage("send JSON text frames"))
                        continue
                    }
                    self.handleClientMessage(text, mailbox: mailbox, cursor: cursor)
                }
            }
            // Writer: the only task that writes to the socket.
            let watch = WriteWatch()
            group.addTask {
                try await self.writeLoop(
                    outbound: outbound, mailbox: mailbox, cursor: cursor, detail: detail, watch: watch)
            }
            // A write waiting two ping periods means the client stopped reading, or vanished
            // without closing. WebSocket pings cannot tell: they queue behind the same writes, so
            // the missing pong is never noticed. Ending here cancels the stuck write.
            let period = configuration.webSocketPing
            group.addTask {
                while !watch.isStuck(longerThan: period * 2) { try await Task.sleep(for: period / 2) }
                self.logger.info(
                    "closing a WebSocket that stopped reading",
                    metadata: [
                        "ws.stuckFor": "\(period * 2)", "ws.cursor": "\(cursor.withLock { $0 }.map(\.rawValue) ?? 0)",
                    ])
            }
            try await group.next()
            group.cancelAll()
        }
    }

    func handleClientMessage(_ text: String, mailbox: Mailbox, cursor: CursorBox) {
        guard let object = try? JSONParser.parseObject(Array(text.utf8)), case .string(let type)? = object["type"]
        else {
            mailbox.post(Self.errorMessage("malformed message: expected a JSON object with a \"type\""))
            return
        }
        switch type {
        case "ping":
            var from: EntityChangeID?
            switch object["lastEntityChangeId"] {
            case nil, .null?: from = .zero
            case .number(let n)? where UInt64(n).map({ $0 <= EntityChangeID.maxWire.rawValue }) == true:
                from = EntityChangeID(UInt64(n)!)
            default:
                mailbox.post(Self.errorMessage("lastEntityChangeId must be a non-negative integer"))
                return
            }
            // Only the first ping sets the cursor: a later one never rewinds the stream.
            cursor.withLock { if $0 == nil { $0 = from } }
            mailbox.post(#"{"type":"ping"}"#)
        case "log-error", "log-info":
            logger.debug("client log message", metadata: ["ws.type": "\(type)"])
        default:
            mailbox.post(Self.errorMessage("unknown message type '\(type.prefix(40))'"))
        }
    }

    static func errorMessage(_ message: String) -> String {
        String(
            decoding: JSONValue.object(["type": .string("error"), "message": .string(message)]).jsonBytes, as: UTF8.self
        )
    }

    func writeLoop(
        outbound: WebSocketOutboundWriter, mailbox: Mailbox, cursor: CursorBox, detail: FrameCache.Detail,
        watch: WriteWatch
    ) async throws {
        func send(_ frame: WebSocketOutboundWriter.OutboundFrame) async throws {
            watch.began()
            defer { watch.ended() }
            try await outbound.write(frame)
        }
        var caughtUp = false
        while !mailbox.isClosed {
            for message in mailbox.take() { try await send(.text(message)) }
            if var position = cursor.withLock({ $0 }) {
                let head = log.head
                if position < head {
                    if caughtUp && head.rawValue - position.rawValue > Self.behindWindow {
                        caughtUp = false
                        try await send(
                            .text(
                                #"{"type":"fell-behind","lastEntityChangeId":\#(position.rawValue),"head":\#(head.rawValue)}"#
                            ))
                    }
                    let frame = try frames.frame(
                        after: position, head: head, detail: detail, log: log, lastSyncedPush: lastSyncedPush())
                    // One text frame over the shared buffer: no copy per socket.
                    try await send(.custom(WebSocketFrame(fin: true, opcode: .text, data: frame.buffer)))
                    position = frame.last
                    cursor.withLock { $0 = position }
                    continue
                }
                if !caughtUp {
                    caughtUp = true
                    try await send(.text(#"{"type":"caught-up","lastEntityChangeId":\#(position.rawValue)}"#))
                    continue
                }
            }
            await mailbox.wait()
        }
    }
}

/// Encoded `frontend-update` frames, shared: every socket at the head asks for the same page
/// (same cursor, same head), so a commit is encoded once however many sockets follow it.
final class FrameCache: Sendable {
    struct Frame: Sendable {
        let buffer: ByteBuffer
        let last: EntityChangeID
    }

    /// What each element carries besides its change.
    enum Detail: Hashable {
        /// Trilium's enrichment (§6.3): the row for notes, branches, attributes and options; the
        /// row plus `contentLength` for attachments; `noteId` for revisions; `positions` for
        /// note_reordering; nothing for blobs, etapi_tokens and erasures.
        case trilium
        /// Every change's row (`?rows=full`), for audit tails and replicas.
        case full
    }

    private struct Key: Hashable {
        let after: EntityChangeID
        let head: EntityChangeID
        let detail: Detail
    }

    private let frames = Mutex<[Key: Frame]>([:])

    func frame(
        after: EntityChangeID, head: EntityChangeID, detail: Detail, log: EntityChangeLog,
        lastSyncedPush: EntityChangeID?
    ) throws -> Frame {
        let key = Key(after: after, head: head, detail: detail)
        if let frame = frames.withLock({ $0[key] }) { return frame }
        var page = try log.changes(after: after, limit: Gateway.pageLimit)
        var bytes = 0
        if let end = page.firstIndex(where: {
            bytes += 200 + ($0.entity?.bytes.count ?? 0)
            return bytes >= Gateway.frameBytes
        }) {
            page.removeSubrange((end + 1)...)
        }
        // Trilium's referential order inside a message (§6.3): what others refer to first.
        let ordered = page.sorted {
            ($0.change.entityName.referentialOrder, $0.id) < ($1.change.entityName.referentialOrder, $1.id)
        }
        var w = JSONWriter(capacity: 256 + page.count * 800)
        w.raw(#"{"type":"frontend-update","data":{"lastSyncedPush":"#)
        if let lastSyncedPush { w.number(lastSyncedPush.rawValue) } else { w.raw("null") }
        w.raw(#","entityChanges":["#)
        for (i, logged) in ordered.enumerated() {
            if i > 0 { w.raw(",") }
            try Self.writeElement(logged, detail: detail, log: log, to: &w)
        }
        w.raw("]}}")
        let frame = Frame(buffer: ByteBuffer(bytes: w.bytes), last: page.last?.id ?? after)
        frames.withLock { f in
            if f.count >= 16 { f.removeAll() }
            f[key] = frame
        }
        return frame
    }

    /// Trilium's element: the entity_changes row (with its `id`) and what `detail` adds.
    static func writeElement(_ logged: LoggedChange, detail: Detail, log: EntityChangeLog, to w: inout JSONWriter)
        throws
    {
        var change = [UInt8]()
        do {
            var inner = JSONWriter()
            logged.change.writeWire(to: &inner, id: logged.id)
            change = inner.bytes
        }
        // Reopen the change object to add the detail.
        w.raw(change.dropLast())
        defer { w.raw("}") }
        guard let entity = logged.entity else { return }
        let name = logged.change.entityName
        if name == .noteReordering {
            w.raw(#","positions":"#)
            w.raw(entity.bytes)
            return
        }
        switch (detail, name) {
        case (.full, _), (.trilium, .notes), (.trilium, .branches), (.trilium, .attributes), (.trilium, .options):
            w.raw(#","entity":"#)
            w.raw(entity.bytes)
        case (.trilium, .revisions):
            if case .string(let noteId)? = entity.value(forKey: "noteId") {
                w.raw(#","noteId":"#)
                w.string(noteId)
            }
        case (.trilium, .attachments):
            w.raw(#","entity":"#)
            guard let length = try contentLength(ofBlobOf: entity, log: log) else {
                w.raw(entity.bytes)
                return
            }
            // The row with one more member, as Trilium's attachment pojo has.
            w.raw(entity.bytes.dropLast())
            w.raw(entity.bytes.count > 2 ? #","contentLength":"# : #""contentLength":"#)
            w.number(UInt64(length))
            w.raw("}")
        case (.trilium, _):
            break
        }
    }

    /// The byte length of the current content of the blob a row points at (nil: no such blob).
    static func contentLength(ofBlobOf row: EntityRow, log: EntityChangeLog) throws -> Int? {
        guard case .string(let blobId)? = row.value(forKey: "blobId"),
            let current = try log.current(EntityKey(.blobs, blobId)), !current.isErased,
            let blob = try log.change(at: current.id)?.entity
        else { return nil }
        var length: Int?
        blob.forEachMember { name, member in
            guard name.elementsEqual("content".utf8), member.kind == .string else { return }
            // Content travels as base64 of its bytes: the decoded length, without decoding. A
            // pushed row is kept as its sender wrote it, so the text may be no base64 at all
            // ("==" would give -2); such content counts as empty rather than trapping.
            let text = member.text
            let padding = text.suffix(2).filter { $0 == UInt8(ascii: "=") }.count
            length = max(0, text.count / 4 * 3 - padding)
        }
        return length
    }
}

/// When a socket's writer began the write it is still in, for the watch on stalled clients.
final class WriteWatch: Sendable {
    private let started = Mutex<ContinuousClock.Instant?>(nil)

    func began() { started.withLock { $0 = .now } }
    func ended() { started.withLock { $0 = nil } }

    func isStuck(longerThan limit: Duration) -> Bool {
        started.withLock { $0.map { $0.duration(to: .now) > limit } ?? false }
    }
}

/// A socket's cursor, shared by its reader (the first ping sets it) and its writer.
final class CursorBox: Sendable {
    private let value: Mutex<EntityChangeID?>
    init(_ initial: EntityChangeID?) { value = Mutex(initial) }
    func withLock<R>(_ body: (inout EntityChangeID?) -> R) -> R { value.withLock { body(&$0) } }
}
