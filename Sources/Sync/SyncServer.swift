public import EventLog
import Logging
public import TributaryCore

/// The server side of Trilium's sync protocol (trilium-protocol.md §3), without HTTP: what a
/// pull returns, the content-hash digests, sector re-queues and pushes. The gateway maps HTTP
/// onto it; a node syncing to a peer uses the same rules on the other side.
public struct SyncServer: Sendable {
    public let log: EntityChangeLog
    public let applier: ChangeApplier
    /// Kept between checks; one per node, shared by its gateway and its sync engine.
    public let digests: SectorDigests
    let logger = Logger(label: "tributary.sync")

    public init(log: EntityChangeLog, applier: ChangeApplier, digests: SectorDigests = SectorDigests()) {
        self.log = log
        self.applier = applier
        self.digests = digests
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
        // Only changes up to the head published when the pull starts: a commit's records are in
        // the log a moment before its index entries reach the lookups, and in that moment a
        // change would look superseded by nothing newer and be skipped for good.
        let head = log.head
        var page: [LoggedChange] = []
        var bytes = 0
        var cursor = after
        scan: while cursor < head {
            // Read first, decide after: the lookups open read transactions of their own, and one
            // opened inside another can deadlock against a map resize waiting between them.
            let chunk = try log.changes(after: cursor, limit: Int(min(1000, head.rawValue - cursor.rawValue)))
            guard !chunk.isEmpty else { break }
            for logged in chunk {
                cursor = logged.id
                let change = logged.change
                guard change.isSynced, change.instanceId != instanceId else { continue }
                // Superseded: a later change of the entity ships instead.
                if compacted, let current = try log.current(change.key), current.id > logged.id { continue }
                page.append(logged)
                bytes += 160 + (logged.entity?.bytes.count ?? 0)
                if page.count >= maxChanges || bytes >= maxBytes { break scan }
            }
            if !page.isEmpty { break }
        }
        return PullPage(
            changes: page, lastEntityChangeId: cursor,
            outstandingPullCount: Int(head.rawValue - min(head.rawValue, cursor.rawValue)))
    }

    /// `GET /api/sync/check`'s digests: per entity name, per sector (first character of the
    /// entityId), `hash` + isErased of every synced entity in entityId order, hashed — over the
    /// latest change of each entity, as Trilium's one-row-per-entity table holds them.
    ///
    /// A blob that no note, attachment or revision points at is left out: Trilium deletes such
    /// blobs, with their entity_changes rows, just before it hashes (`eraseUnusedBlobs`,
    /// trilium-protocol.md §2.4). Counted here, each one would make its sector differ from a
    /// Trilium peer's at every check, and re-queueing it would never help. The log keeps them.
    ///
    /// The first check reads every entity (seconds at a million), later ones the sectors changed
    /// since (`SectorDigests`); it runs off the cooperative pool.
    public func entityHashes() async throws -> [EntityName: [String: String]] {
        try await offloaded { [self] in
            let started = ContinuousClock.now
            defer {
                // As Trilium logs "Content hash computation took N ms": it runs on both sides of
                // every cycle.
                logger.debug(
                    "content hashes computed", metadata: ["sync.check.duration": "\(started.duration(to: .now))"])
            }
            return try digests.current(log, logger: logger)
        }
    }

    /// Re-issues every entity of a sector so it is shipped again: a fresh changeId and **this
    /// node's instanceId** (Trilium keeps the old stamp, and the peer lacking the data is then
    /// never sent it — PR #11000). For a `blobs` sector, as Trilium does, also the notes,
    /// attachments and revisions whose `blobId` falls in it: a blob mismatch may come from the
    /// entity pointing at it. Blobs nothing points at are not re-issued (see `entityHashes`).
    /// Returns how many were re-issued.
    public func queueSector(_ name: EntityName, sector: String) async throws -> Int {
        let chosen = try await offloaded { [self] in try sectorMembers(name, sector: sector) }
        var count = 0
        var next = 0
        // In commits of at most 1000 changes or about 16 MB: one commit holding a whole blob
        // sector of a large document would keep every other writer waiting behind it.
        while next < chosen.count {
            let from = next
            let (issued, reached) = try await log.write { writer in
                var issued = 0
                var bytes = 0
                var i = from
                while i < chosen.count && issued < Self.requeueBatch && bytes < Self.requeueBytes {
                    let (key, id) = chosen[i]
                    i += 1
                    // Skip an entity that changed since it was listed: its newer change ships anyway.
                    guard try writer.current(key)?.id == id, var record = try writer.record(at: id) else { continue }
                    record.change.changeId = RandomID.make()
                    record.change.instanceId = writer.instanceId
                    record.originInstanceId = writer.instanceId
                    bytes += record.entity?.bytes.count ?? 0
                    writer.append(record)
                    issued += 1
                }
                return (issued, i)
            }.value
            count += issued
            next = reached
        }
        return count
    }

    /// What `queueSector` re-issues, listed from every entity of `name` (and, for blobs, of
    /// their referrers).
    private func sectorMembers(_ name: EntityName, sector: String) throws -> [(EntityKey, EntityChangeID)] {
        var targets: [(key: EntityKey, id: EntityChangeID, isErased: Bool)] = []
        try log.forEachCurrent(of: name) { key, entry in
            if entry.isSynced, key.id.hasPrefix(sector) { targets.append((key, entry.id, entry.isErased)) }
        }
        if name == .blobs {
            let referrers = try blobReferrers()
            let referenced = Set(referrers.map(\.blobId))
            targets.removeAll { !$0.isErased && !referenced.contains($0.key.id) }
            for referrer in referrers where referrer.blobId.hasPrefix(sector) {
                targets.append((referrer.key, referrer.id, false))
            }
        }
        return targets.map { ($0.key, $0.id) }
    }

    static let requeueBatch = 1000
    static let requeueBytes = 16 << 20

    /// The synced, unerased notes, attachments and revisions with the blob each points at: what
    /// keeps a blob alive in Trilium (a soft-deleted note still holds its blob; an erased one
    /// no longer exists there).
    func blobReferrers() throws -> [(key: EntityKey, id: EntityChangeID, blobId: String)] {
        try Self.blobReferrers(log)
    }

    static func blobReferrers(_ log: EntityChangeLog) throws -> [(key: EntityKey, id: EntityChangeID, blobId: String)] {
        var listed: [(key: EntityKey, id: EntityChangeID)] = []
        for name in EntityName.blobReferrers {
            try log.forEachCurrent(of: name) { key, entry in
                if entry.isSynced, !entry.isErased { listed.append((key, entry.id)) }
            }
        }
        listed.sort { $0.id < $1.id }
        var referrers: [(key: EntityKey, id: EntityChangeID, blobId: String)] = []
        // Rows are copied out a slice at a time, so a large log never holds them all at once.
        for start in stride(from: 0, to: listed.count, by: 4096) {
            let slice = listed[start..<min(listed.count, start + 4096)]
            for (item, row) in zip(slice, try log.rows(at: slice.map(\.id))) {
                if let blobId = blobId(of: row) { referrers.append((item.key, item.id, blobId)) }
            }
        }
        return referrers
    }

    /// The blob a note, attachment or revision row points at.
    static func blobId(of row: EntityRow?) -> String? {
        if case .string(let blobId)? = row?.value(forKey: "blobId") { return blobId }
        return nil
    }
}
