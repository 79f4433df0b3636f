import TributaryCore

/// The index entries of the changes after the index checkpoint, held in memory so lookups stay
/// exact while the on-disk `current` and `changeIds` trail the head.
///
/// Rebuilt from the log on open; drained by index batches; bounded by the log's backpressure.
struct IndexOverlay {
    /// Latest entry per entity among the changes not yet indexed.
    var current: [EntityKey: CurrentEntry] = [:]
    /// changeId → id for the changes not yet indexed.
    var changeIds: [ChangeIdKey: EntityChangeID] = [:]
    /// The changes not yet indexed, in id order (`queue[queueStart...]`).
    var queue: [(id: EntityChangeID, key: EntityKey, changeId: String)] = []
    var queueStart = 0
    /// Everything up to here is in the on-disk indexes.
    var checkpoint: EntityChangeID = .zero

    /// The last commit's entries, published whole when it commits and folded into the maps
    /// just after its writers are acknowledged (while they prepare their next write).
    var recent: RecentLayer?

    struct RecentLayer {
        var current: [EntityKey: CurrentEntry]
        var changeIds: [ChangeIdKey: EntityChangeID]
        var firstId: EntityChangeID
        var items: [(key: EntityKey, changeId: String)]
    }

    var count: Int { queue.count - queueStart + (recent?.items.count ?? 0) }

    func currentEntry(_ key: EntityKey) -> CurrentEntry? {
        if let recent, let e = recent.current[key] { return e }
        return current[key]
    }

    func changeID(_ changeId: String) -> EntityChangeID? {
        let key = ChangeIdKey(changeId)
        if let recent, let id = recent.changeIds[key] { return id }
        return changeIds[key]
    }

    /// Every entity's latest unindexed entry.
    var allCurrent: [EntityKey: CurrentEntry] {
        guard let recent else { return current }
        return current.merging(recent.current) { _, new in new }
    }

    /// The latest unindexed entries whose `current` key (name code, then entityId) starts with
    /// one of `prefixes`; all of them if one prefix is empty. One pass, whatever their number.
    func currentEntries(withKeyPrefixes prefixes: [[UInt8]]) -> [EntityKey: CurrentEntry] {
        if prefixes.contains(where: \.isEmpty) { return allCurrent }
        // Looked up by name code and the entityId's first byte, then the rest compared.
        var wholeNames: Set<UInt8> = []
        var byStart: [UInt16: [ArraySlice<UInt8>]] = [:]
        for prefix in prefixes {
            if prefix.count == 1 {
                wholeNames.insert(prefix[0])
            } else {
                byStart[UInt16(prefix[0]) << 8 | UInt16(prefix[1]), default: []].append(prefix.dropFirst(2))
            }
        }
        func matches(_ key: EntityKey) -> Bool {
            if wholeNames.contains(key.name.code) { return true }
            guard let first = key.id.utf8.first, let rests = byStart[UInt16(key.name.code) << 8 | UInt16(first)]
            else { return false }
            return rests.contains { key.id.utf8.dropFirst().starts(with: $0) }
        }
        var result: [EntityKey: CurrentEntry] = [:]
        for (key, entry) in current where matches(key) { result[key] = entry }
        if let recent {
            for (key, entry) in recent.current where matches(key) { result[key] = entry }
        }
        return result
    }

    /// Moves the last commit's entries into the maps; returns how many changes it held.
    mutating func foldRecent() -> Int {
        guard let r = recent else { return 0 }
        recent = nil
        growIfNeeded(adding: r.items.count)
        current.merge(r.current) { _, new in new }
        changeIds.merge(r.changeIds) { _, new in new }
        var id = r.firstId
        for item in r.items {
            queue.append((id, item.key, item.changeId))
            id = id.next
        }
        return r.items.count
    }

    /// The most entries the overlay is expected to hold (the indexer drains it beyond this).
    let fullCapacity: Int

    /// Starts with room for `capacity` entries.
    init(capacity: Int = 0, fullCapacity: Int = 0) {
        self.fullCapacity = max(capacity, fullCapacity)
        current.reserveCapacity(capacity)
        changeIds.reserveCapacity(capacity)
        queue.reserveCapacity(capacity)
    }

    /// Past the initial room, grows once to `fullCapacity`: doubling step by step would rehash
    /// the whole overlay each time, and the last doublings (near a million entries) stalled the
    /// writer queue for most of a second.
    private mutating func growIfNeeded(adding n: Int) {
        let needed = changeIds.count + n
        guard needed > changeIds.capacity, changeIds.capacity < fullCapacity else { return }
        let target = max(needed, fullCapacity)
        current.reserveCapacity(target)
        changeIds.reserveCapacity(target)
    }

    mutating func add(id: EntityChangeID, key: EntityKey, changeId: String, entry: CurrentEntry) {
        growIfNeeded(adding: 1)
        current[key] = entry
        changeIds[ChangeIdKey(changeId)] = id
        queue.append((id, key, changeId))
    }

    /// The oldest `limit` queued changes, and the id they reach.
    func oldest(_ limit: Int) -> ArraySlice<(id: EntityChangeID, key: EntityKey, changeId: String)> {
        queue[queueStart..<min(queue.count, queueStart + limit)]
    }

    /// Forgets what an index batch up to `target` stored on disk.
    mutating func drop(through target: EntityChangeID, count n: Int) {
        for i in queueStart..<(queueStart + n) {
            let item = queue[i]
            changeIds[ChangeIdKey(item.changeId)] = nil
            if let entry = current[item.key], entry.id <= target { current[item.key] = nil }
        }
        queueStart += n
        checkpoint = target
        // Compact now and then so the drained prefix does not pin memory.
        if queueStart > 65_536 && queueStart * 2 > queue.count {
            queue.removeFirst(queueStart)
            queueStart = 0
        }
        if count == 0 {
            queue.removeAll(keepingCapacity: true)
            queueStart = 0
        }
    }
}

extension IndexOverlay {
    /// Room for 128k entries at first; the indexer starts draining at half the overlay limit, so
    /// that (plus one large group) is all the overlay ever holds.
    init(_ configuration: EntityChangeLog.Configuration, checkpoint: EntityChangeID = .zero) {
        self.init(
            capacity: min(configuration.overlayLimit, 1 << 17),
            fullCapacity: configuration.overlayLimit / 2 + 65_536)
        self.checkpoint = checkpoint
    }
}
