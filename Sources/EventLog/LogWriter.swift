public import TributaryCore

/// What a write sees and does inside a group commit: exact lookups (its own appends, then earlier
/// writes of the same group, then the overlay, then the on-disk indexes) and appends.
///
/// - Important: Exists only for the duration of the `write` body. The body may run more than
///   once (the group is retried after the map grows), so it must not have side effects outside it.
public struct LogWriter: ~Copyable {
    let txn: TransactionRef
    let log: EntityChangeLog
    let group: GroupLayer

    /// This node's instanceId.
    public var instanceId: String { log.instanceId }

    init(txn: TransactionRef, log: EntityChangeLog, group: GroupLayer) {
        self.txn = txn
        self.log = log
        self.group = group
    }

    /// The latest change of an entity, including changes appended earlier in this write.
    public func current(_ key: EntityKey) throws -> CurrentEntry? {
        if let e = group.current[key] { return e }
        return try log.indexedCurrent(key, txn: txn)
    }

    /// Whether a change with this changeId is in the log (or earlier in this write).
    public func contains(changeId: String) throws -> Bool {
        if group.changeIds[ChangeIdKey(changeId)] != nil { return true }
        return try log.indexedChangeID(changeId, txn: txn) != nil
    }

    /// The record stored at `id` (for re-issuing a local version).
    public func record(at id: EntityChangeID) throws -> ChangeRecord? {
        if id >= group.firstId { return group.record(id) }
        return try log.storedRecord(id, txn: txn)
    }

    /// Appends a record; returns the id it will have once the group commits.
    @discardableResult
    public mutating func append(_ record: ChangeRecord) -> EntityChangeID {
        group.append(record)
    }

    /// Stores a caller-defined checkpoint in the same transaction as the appends it covers.
    public mutating func setCheckpoint(_ name: String, _ value: [UInt8]) {
        group.meta[name] = value
    }

    /// A checkpoint as of this write (including one set earlier in it).
    public func checkpoint(_ name: String) throws -> [UInt8]? {
        if let v = group.meta[name] { return v }
        return try log.metaValue(MetaKey.userPrefix + name, txn: txn)
    }
}

/// The appends of one group commit (writer queue only). Writes add to it directly; a write
/// that throws is rolled back to the mark taken before it ran.
final class GroupLayer {
    // Only the writer queue touches a group, one write at a time, so the runtime's dynamic
    // exclusivity checks (measurable on every lookup here) are switched off for its fields.
    @exclusivity(unchecked) private(set) var firstId: EntityChangeID = .zero
    @exclusivity(unchecked) var records: [ChangeRecord] = []
    @exclusivity(unchecked) var current: [EntityKey: CurrentEntry] = [:]
    @exclusivity(unchecked) var changeIds: [ChangeIdKey: EntityChangeID] = [:]
    @exclusivity(unchecked) var meta: [String: [UInt8]] = [:]

    /// Starts an empty group at `firstId`, keeping the storage of the last one (groups are
    /// similar in size, so the lookups never regrow).
    func reset(firstId: EntityChangeID) {
        self.firstId = firstId
        records.removeAll(keepingCapacity: true)
        current.removeAll(keepingCapacity: true)
        changeIds.removeAll(keepingCapacity: true)
        meta.removeAll(keepingCapacity: true)
    }

    var nextId: EntityChangeID { EntityChangeID(firstId.rawValue + UInt64(records.count)) }

    func record(_ id: EntityChangeID) -> ChangeRecord? {
        let i = Int(id.rawValue - firstId.rawValue)
        return i < records.count ? records[i] : nil
    }

    func append(_ record: ChangeRecord) -> EntityChangeID {
        let id = nextId
        records.append(record)
        let c = record.change
        current[c.key] = CurrentEntry(id: id, c)
        changeIds[ChangeIdKey(c.changeId)] = id
        return id
    }

    struct Mark {
        let count: Int
        let meta: [String: [UInt8]]
    }

    var mark: Mark { Mark(count: records.count, meta: meta) }

    /// Ids appended since `mark`.
    func range(since mark: Mark) -> ClosedRange<EntityChangeID>? {
        guard records.count > mark.count else { return nil }
        return EntityChangeID(firstId.rawValue + UInt64(mark.count))...EntityChangeID(nextId.rawValue - 1)
    }

    /// Forgets what a failed write added (rare: rebuilds the lookups from the kept records).
    func rollback(to mark: Mark) {
        guard records.count > mark.count || meta != mark.meta else { return }
        let kept = Array(records[..<mark.count])
        records.removeAll(keepingCapacity: true)
        current.removeAll(keepingCapacity: true)
        changeIds.removeAll(keepingCapacity: true)
        for record in kept { _ = append(record) }
        meta = mark.meta
    }
}
