public import EventLog
public import TributaryCore

/// The server side of Trilium's sync protocol (trilium-protocol.md §3), without HTTP: what a
/// pull returns, the content-hash digests, sector re-queues and pushes. The gateway maps HTTP
/// onto it; a node syncing to a peer uses the same rules on the other side.
public struct SyncServer: Sendable {
    public let log: EntityChangeLog
    public let applier: ChangeApplier

    public init(log: EntityChangeLog, applier: ChangeApplier) {
        self.log = log
        self.applier = applier
    }

    /// One page of `GET /api/sync/changed`.
    public struct PullPage: Sendable {
        public var changes: [LoggedChange]
        /// The id of the last change returned, or the cursor advanced over skipped ones.
        public var lastEntityChangeId: EntityChangeID
        public var outstandingPullCount: Int
    }

    /// Changes after `after` as Trilium serves them: compacted (each entity once, at its latest
    /// change — Trilium keeps one row per entity), synced ones only, none that `instanceId` sent
    /// here (no echo) while the cursor still moves past them; at most `maxChanges` or about
    /// `maxBytes` of JSON (the change that crosses the limit is included, so a big blob still
    /// goes alone). An empty page means the caller has everything.
    ///
    /// `outstandingPullCount` counts the changes after the page, an upper bound of what Trilium
    /// counts (its table holds one row per entity), so a client's progress never stalls early.
    ///
    /// With `compacted: false` (Tributary's full-history extension) every change is shipped, not
    /// only each entity's latest, so a replica keeps the whole audit trail.
    public func changed(
        after: EntityChangeID, excludingInstance instanceId: String?, maxChanges: Int = 1000, maxBytes: Int = 1_000_000,
        compacted: Bool = true
    ) throws -> PullPage {
        var page: [LoggedChange] = []
        var bytes = 0
        var cursor = after
        scan: while true {
            var visited = 0
            var full = false
            try log.forEachChange(after: cursor, limit: 1000) { logged in
                visited += 1
                guard !full else { return }
                cursor = logged.id
                let change = logged.change
                guard change.isSynced, change.instanceId != instanceId else { return }
                if compacted {
                    guard try log.current(change.key)?.id == logged.id else { return }  // superseded
                }
                page.append(logged)
                bytes += 160 + (logged.entity?.bytes.count ?? 0)
                if page.count >= maxChanges || bytes >= maxBytes { full = true }
            }
            if full || visited == 0 || !page.isEmpty { break scan }
        }
        let head = log.head
        return PullPage(
            changes: page, lastEntityChangeId: cursor,
            outstandingPullCount: Int(head.rawValue - min(head.rawValue, cursor.rawValue)))
    }

    /// `GET /api/sync/check`'s digests: per entity name, per sector (first character of the
    /// entityId), `hash` + isErased of every synced entity in entityId order, hashed — over the
    /// latest change of each entity, as Trilium's one-row-per-entity table holds them.
    public func entityHashes() throws -> [EntityName: [String: String]] {
        var sectors: [EntityName: [Character: [(id: String, hash: String, isErased: Bool)]]] = [:]
        try log.forEachCurrent { key, entry in
            guard entry.isSynced, key.name != .noteReordering, let sector = key.id.first else { return }
            sectors[key.name, default: [:]][sector, default: []].append((key.id, entry.hash, entry.isErased))
        }
        var digests: [EntityName: [String: String]] = [:]
        for (name, bySector) in sectors {
            for (sector, entries) in bySector {
                // Trilium sorts with JavaScript's string order: UTF-16 code units. Entity ids are
                // ASCII (every change is validated), where that is byte order, which `<` on Swift
                // strings gives with a memcmp; comparing UTF-16 views was most of the check's time.
                let ascii = entries.allSatisfy { $0.id.utf8.allSatisfy { $0 < 0x80 } }
                let sorted =
                    ascii
                    ? entries.sorted { $0.id < $1.id }
                    : entries.sorted { $0.id.utf16.lexicographicallyPrecedes($1.id.utf16) }
                digests[name, default: [:]][String(sector)] = ContentHash.sectorDigest(
                    sorted.map { (hash: $0.hash, isErased: $0.isErased) })
            }
        }
        return digests
    }

    /// Re-issues every entity of a sector so it is shipped again: a fresh changeId and **this
    /// node's instanceId** (Trilium keeps the old stamp, and the peer lacking the data is then
    /// never sent it — PR #11000). For a `blobs` sector, as Trilium does, also the notes,
    /// attachments and revisions whose `blobId` falls in it: a blob mismatch may come from the
    /// entity pointing at it. Returns how many were re-issued.
    public func queueSector(_ name: EntityName, sector: String) async throws -> Int {
        var targets: [(EntityKey, EntityChangeID)] = []
        try log.forEachCurrent(of: name) { key, entry in
            if entry.isSynced, key.id.hasPrefix(sector) { targets.append((key, entry.id)) }
        }
        if name == .blobs {
            var referrers: [(EntityKey, EntityChangeID)] = []
            for referrer in [EntityName.notes, .attachments, .revisions] {
                try log.forEachCurrent(of: referrer) { key, entry in
                    if entry.isSynced, !entry.isErased { referrers.append((key, entry.id)) }
                }
            }
            for (key, id) in referrers {
                if case .string(let blobId)? = try log.change(at: id)?.entity?.value(forKey: "blobId"),
                    blobId.hasPrefix(sector)
                {
                    targets.append((key, id))
                }
            }
        }
        guard !targets.isEmpty else { return 0 }
        let chosen = targets
        return try await log.write { writer in
            var count = 0
            for (key, id) in chosen {
                // Skip an entity that changed since it was listed: its newer change ships anyway.
                guard try writer.current(key)?.id == id, var record = try writer.record(at: id) else { continue }
                record.change.changeId = RandomID.make()
                record.change.instanceId = writer.instanceId
                record.originInstanceId = writer.instanceId
                writer.append(record)
                count += 1
            }
            return count
        }.value
    }
}
