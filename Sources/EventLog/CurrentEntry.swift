public import TributaryCore

/// The latest change of one entity: what Trilium's one-row-per-entity `entity_changes` holds,
/// and what the conflict rule and the sector hashes read.
public struct CurrentEntry: Sendable, Hashable {
    public var id: EntityChangeID
    public var isErased: Bool
    public var hash: String
    public var utcDateChanged: UTCDateTime
    /// Whether the change is shipped to peers (Trilium's non-synced options are not).
    public var isSynced: Bool

    public init(id: EntityChangeID, isErased: Bool, hash: String, utcDateChanged: UTCDateTime, isSynced: Bool = true) {
        self.id = id
        self.isErased = isErased
        self.hash = hash
        self.utcDateChanged = utcDateChanged
        self.isSynced = isSynced
    }

    /// The entry of a change stored at `id`.
    public init(id: EntityChangeID, _ change: EntityChange) {
        self.init(
            id: id, isErased: change.isErased, hash: change.hash, utcDateChanged: change.utcDateChanged,
            isSynced: change.isSynced)
    }
}

/// Byte layouts of the index databases' keys and values.
enum IndexCoding {
    /// `changes` key: the id, big-endian, so byte order is id order.
    static func idKey(_ id: EntityChangeID) -> [UInt8] {
        withUnsafeBytes(of: id.rawValue.bigEndian) { Array($0) }
    }

    static func id(fromKey key: UnsafeRawBufferPointer) -> EntityChangeID? {
        guard key.count == 8 else { return nil }
        var v: UInt64 = 0
        withUnsafeMutableBytes(of: &v) { $0.copyMemory(from: key) }
        return EntityChangeID(UInt64(bigEndian: v))
    }

    /// `current` key: entity name code, then the entityId bytes.
    static func currentKey(_ key: EntityKey) -> [UInt8] {
        var bytes: [UInt8] = [key.name.code]
        bytes.append(contentsOf: key.id.utf8)
        return bytes
    }

    static func entityKey(fromCurrentKey key: UnsafeRawBufferPointer) -> EntityKey? {
        guard key.count >= 2, let name = EntityName(code: key[0]) else { return nil }
        return EntityKey(name, String(decoding: UnsafeRawBufferPointer(rebasing: key[1...]), as: UTF8.self))
    }

    /// `current` value: id (8, big-endian), flags (1: 1 isErased, 2 not synced), utcDateChanged ms
    /// (8, little-endian), hash.
    static func currentValue(_ e: CurrentEntry) -> [UInt8] {
        var bytes = idKey(e.id)
        bytes.append((e.isErased ? 1 : 0) | (e.isSynced ? 0 : 2))
        withUnsafeBytes(of: e.utcDateChanged.millisecondsSinceEpoch.littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: e.hash.utf8)
        return bytes
    }

    /// nil: not a value this layout writes (ids start at 1, two flag bits, a hash of 1-64
    /// printable ASCII characters, as the apply path validates it).
    static func currentEntry(fromValue v: UnsafeRawBufferPointer) -> CurrentEntry? {
        guard v.count >= 18, v.count <= 17 + 64, v[8] & ~3 == 0,
            let id = id(fromKey: UnsafeRawBufferPointer(rebasing: v[0..<8])), id != .zero,
            v[17...].allSatisfy({ $0 > 0x20 && $0 < 0x7F })
        else { return nil }
        var ms: Int64 = 0
        withUnsafeMutableBytes(of: &ms) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: v[9..<17])) }
        return CurrentEntry(
            id: id, isErased: v[8] & 1 != 0,
            hash: String(decoding: UnsafeRawBufferPointer(rebasing: v[17...]), as: UTF8.self),
            utcDateChanged: UTCDateTime(millisecondsSinceEpoch: Int64(littleEndian: ms)), isSynced: v[8] & 2 == 0)
    }
}

extension IndexCoding {
    /// A stored `current` value; damage is an error, never a missing entry: the conflict rule
    /// would take a damaged entity for a new one.
    static func storedCurrent(_ value: UnsafeRawBufferPointer, of key: EntityKey) throws(EventLogError) -> CurrentEntry
    {
        guard let entry = currentEntry(fromValue: value) else { throw .corruptIndex("the current entry of \(key)") }
        return entry
    }

    /// A stored `changeIds` value: the id, 8 bytes.
    static func storedChangeID(_ value: UnsafeRawBufferPointer, of changeId: String) throws(EventLogError)
        -> EntityChangeID
    {
        guard let id = id(fromKey: value), id != .zero else { throw .corruptIndex("the entry of changeId \(changeId)") }
        return id
    }

    /// A stored `current` key.
    static func storedEntityKey(_ key: UnsafeRawBufferPointer) throws(EventLogError) -> EntityKey {
        guard let entityKey = entityKey(fromCurrentKey: key) else {
            throw .corruptIndex("a key of the current index (\(key.count) bytes)")
        }
        return entityKey
    }
}

/// Keys of the `meta` database.
enum MetaKey {
    static let format = "format"
    static let instanceId = "instanceId"
    /// The highest id whose entries are in `current` and `changeIds`.
    static let indexCheckpoint = "index.checkpoint"
    /// Prefix of caller-defined entries (sync checkpoints).
    static let userPrefix = "kv."
}
