/// The name of a synced Trilium table (or the `note_reordering` pseudo-entity).
///
/// Only the names Trilium syncs exist: an unknown name is refused when a change is decoded, so
/// every later stage can rely on it (the primary key column, the hashed properties, the views).
public enum EntityName: String, CaseIterable, Sendable, Hashable, Comparable, CustomStringConvertible {
    case notes
    case branches
    case attributes
    case revisions
    case attachments
    case blobs
    case options
    case etapiTokens = "etapi_tokens"
    case noteReordering = "note_reordering"

    public var description: String { rawValue }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }

    /// Parses a wire name, refusing anything Trilium does not sync.
    public init(validating name: String) throws(CoreError) {
        guard let known = EntityName(rawValue: name) else {
            throw CoreError(
                .unknownEntityName,
                "unknown entityName '\(name.prefix(64))'; expected one of "
                    + EntityName.allCases.map(\.rawValue).joined(separator: ", "))
        }
        self = known
    }

    /// The column holding the entity's id in its row (`entityId` of its changes).
    public var primaryKey: String? {
        switch self {
        case .notes: "noteId"
        case .branches: "branchId"
        case .attributes: "attributeId"
        case .revisions: "revisionId"
        case .attachments: "attachmentId"
        case .blobs: "blobId"
        case .options: "name"
        case .etapiTokens: "etapiTokenId"
        case .noteReordering: nil
        }
    }

    /// A one-byte code used in compact keys; stable across versions (stored on disk).
    public var code: UInt8 {
        switch self {
        case .notes: 1
        case .branches: 2
        case .attributes: 3
        case .revisions: 4
        case .attachments: 5
        case .blobs: 6
        case .options: 7
        case .etapiTokens: 8
        case .noteReordering: 9
        }
    }

    public init?(code: UInt8) {
        guard let name = EntityName.allCases.first(where: { $0.code == code }) else { return nil }
        self = name
    }

    /// Trilium's "referential order" weight (§6.3): entities that others refer to come first.
    public var referentialOrder: Int {
        switch self {
        case .etapiTokens, .blobs, .options: 0
        case .notes: 1
        case .attributes, .branches, .noteReordering, .revisions: 2
        case .attachments: 3
        }
    }
}

/// An entity's identity: its table and its id.
public struct EntityKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var name: EntityName
    public var id: String

    public init(_ name: EntityName, _ id: String) {
        self.name = name
        self.id = id
    }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.name.rawValue, lhs.id) < (rhs.name.rawValue, rhs.id)
    }

    public var description: String { "\(name.rawValue)/\(id)" }

    /// Feeds one precomputed word instead of the id's characters: keys are hashed several times
    /// per appended change (dedupe, conflict rule, overlay), and this halves that cost.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(FastHash.fnv1a(id) &+ UInt64(name.code))
    }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.name == rhs.name && lhs.id == rhs.id }
}

/// A cheap non-cryptographic hash of short ASCII keys (FNV-1a, 64-bit). Dictionaries still mix
/// it through their seeded hasher, so it only replaces the per-character work.
public enum FastHash {
    @inline(__always)
    public static func fnv1a(_ text: String) -> UInt64 {
        let fast = text.utf8.withContiguousStorageIfAvailable { bytes -> UInt64 in
            var h: UInt64 = 0xcbf2_9ce4_8422_2325
            for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
            return h
        }
        if let fast { return fast }
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in text.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h
    }
}

/// A changeId as a dictionary key, hashed with ``FastHash``.
public struct ChangeIdKey: Hashable, Sendable {
    public let value: String
    @inline(__always) public init(_ value: String) { self.value = value }
    public func hash(into hasher: inout Hasher) { hasher.combine(FastHash.fnv1a(value)) }
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.value == rhs.value }
}
