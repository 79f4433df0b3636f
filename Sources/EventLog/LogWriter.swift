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
    var own: GroupLayer.Layer

    /// This node's instanceId.
    public var instanceId: String { log.instanceId }

    init(txn: TransactionRef, log: EntityChangeLog, group: GroupLayer) {
        self.txn = txn
        self.log = log
        self.group = group
        own = GroupLayer.Layer(firstId: group.nextId)
    }

    /// The latest change of an entity, including changes appended earlier in this write.
    public func current(_ key: EntityKey) throws -> CurrentEntry? {
        if let e = own.current[key] ?? group.layer.current[key] { return e }
        return try log.indexedCurrent(key, txn: txn)
    }

    /// Whether a change with this changeId is in the log (or earlier in this write).
    public func contains(changeId: String) throws -> Bool {
        if own.changeIds[changeId] != nil || group.layer.changeIds[changeId] != nil { return true }
        return try log.indexedChangeID(changeId, txn: txn) != nil
    }

    /// The record stored at `id` (for re-issuing a local version).
    public func record(at id: EntityChangeID) throws -> ChangeRecord? {
        if id >= own.firstId { return own.record(id) }
        if id >= group.layer.firstId { return group.layer.record(id) }
        return try log.storedRecord(id, txn: txn)
    }

    /// Appends a record; returns the id it will have once the group commits.
    @discardableResult
    public mutating func append(_ record: ChangeRecord) -> EntityChangeID {
        own.append(record)
    }

    /// Stores a caller-defined checkpoint in the same transaction as the appends it covers.
    public mutating func setCheckpoint(_ name: String, _ value: [UInt8]) {
        own.meta[name] = value
    }

    /// A checkpoint as of this write (including one set earlier in it).
    public func checkpoint(_ name: String) throws -> [UInt8]? {
        if let v = own.meta[name] ?? group.layer.meta[name] { return v }
        return try log.metaValue(MetaKey.userPrefix + name, txn: txn)
    }

    /// Ids appended so far by this write.
    public var appendedRange: ClosedRange<EntityChangeID>? { own.range }
}

/// The appends of one group commit, shared by the writes in it (writer queue only).
final class GroupLayer {
    struct Layer {
        let firstId: EntityChangeID
        var records: [ChangeRecord] = []
        var current: [EntityKey: CurrentEntry] = [:]
        var changeIds: [String: EntityChangeID] = [:]
        var meta: [String: [UInt8]] = [:]

        init(firstId: EntityChangeID) { self.firstId = firstId }

        var nextId: EntityChangeID { EntityChangeID(firstId.rawValue + UInt64(records.count)) }

        var range: ClosedRange<EntityChangeID>? {
            records.isEmpty ? nil : firstId...EntityChangeID(nextId.rawValue - 1)
        }

        func record(_ id: EntityChangeID) -> ChangeRecord? {
            let i = Int(id.rawValue - firstId.rawValue)
            return i < records.count ? records[i] : nil
        }

        mutating func append(_ record: ChangeRecord) -> EntityChangeID {
            let id = nextId
            records.append(record)
            let c = record.change
            current[c.key] = CurrentEntry(id: id, isErased: c.isErased, hash: c.hash, utcDateChanged: c.utcDateChanged)
            changeIds[c.changeId] = id
            return id
        }
    }

    var layer: Layer

    init(firstId: EntityChangeID) { layer = Layer(firstId: firstId) }

    var nextId: EntityChangeID { layer.nextId }

    /// Takes a finished write's layer into the group; returns its id range.
    func merge(_ own: Layer) -> ClosedRange<EntityChangeID>? {
        precondition(own.firstId == layer.nextId)
        layer.records.append(contentsOf: own.records)
        layer.current.merge(own.current) { _, new in new }
        layer.changeIds.merge(own.changeIds) { _, new in new }
        layer.meta.merge(own.meta) { _, new in new }
        return own.range
    }
}
