import EventLog
import Logging
import Synchronization
import TributaryCore

/// The content-hash check's digests (`GET /api/sync/check`), kept between checks and brought up
/// to date from the changes made since, so a check reads the sectors those changes touched
/// instead of every entity (docs/decisions/0016).
///
/// Both sides of every sync cycle run the check, and the whole computation reads every entity's
/// latest change — and, because unreferenced blobs are left out, the row of every note,
/// attachment and revision: seconds at a million entities. One instance serves a node (its
/// gateway and its sync engine share it).
public final class SectorDigests: Sendable {
    struct State {
        /// Everything up to this id is in `digests` (later changes may be too; they are read
        /// again at the next update, which changes nothing for them).
        var asOf: EntityChangeID
        var digests: [EntityName: [String: String]]
        /// The blob each synced, live note, attachment and revision points at.
        var blobOf: [EntityKey: String]
        /// How many of those point at each blob: a live blob is counted only while this is > 0.
        var references: [String: Int]
    }

    /// Held while a check computes, so concurrent checks wait for one computation.
    private let state = Mutex<State?>(nil)
    private let wholeCount = Atomic(0)
    /// How many checks computed everything (tests: the others updated the kept digests).
    package var wholeComputations: Int { wholeCount.load(ordering: .relaxed) }
    /// Past this many changes since the last check, everything is computed again.
    let maxIncrementalChanges: Int

    public init(maxIncrementalChanges: Int = 100_000) {
        self.maxIncrementalChanges = maxIncrementalChanges
    }

    /// The digests as of now: from the last check's, updated, or computed whole the first time
    /// (or after many changes).
    func current(_ log: EntityChangeLog, logger: Logger) throws -> [EntityName: [String: String]] {
        try state.withLock { state in
            // The head is read before anything else: the state then holds at least this much.
            let head = log.head
            // Taken out, so the update changes the only copy of its maps in place (a second
            // reference would make it copy the blob references, most of the cost at 1M).
            let kept = state
            state = nil
            if var kept, head >= kept.asOf {
                let since = kept.asOf
                if try update(&kept, to: head, log: log) {
                    state = kept
                    logger.debug(
                        "content hashes updated", metadata: ["sync.check.changes": "\(head.rawValue - since.rawValue)"])
                    return kept.digests
                }
            }
            let computed = try Self.compute(log, asOf: head)
            state = computed
            wholeCount.add(1, ordering: .relaxed)
            logger.debug("content hashes computed whole", metadata: ["sync.check.head": "\(head)"])
            return computed.digests
        }
    }

    // MARK: - Computing

    /// Every sector's digest, and the blob references, from every entity's latest change.
    static func compute(_ log: EntityChangeLog, asOf: EntityChangeID) throws -> State {
        let referrers = try SyncServer.blobReferrers(log)
        // Sized up front: growing them, which hashes every key again each time, was a tenth of a
        // whole check at 1M.
        var blobOf = [EntityKey: String](minimumCapacity: referrers.count)
        var references = [String: Int](minimumCapacity: referrers.count)
        for referrer in referrers {
            blobOf[referrer.key] = referrer.blobId
            references[referrer.blobId, default: 0] += 1
        }
        // One list per name code and first id byte (entity ids are ASCII, validated, so that byte
        // is the sector): a dictionary of dictionaries hashed a name and a Character per entity.
        var sectors = [[Member]](repeating: [], count: 256 << 8)
        try log.forEachCurrent { key, entry in
            guard let (_, member) = member(key, entry, references: references), let byte = key.id.utf8.first
            else { return }
            sectors[Int(key.name.code) << 8 | Int(byte)].append(member)
        }
        var digests: [EntityName: [String: String]] = [:]
        for name in EntityName.allCases {
            for byte in 0..<256 {
                let members = sectors[Int(name.code) << 8 | byte]
                guard !members.isEmpty else { continue }
                digests[name, default: [:]][String(UnicodeScalar(UInt8(byte)))] = digest(members)
            }
        }
        return State(asOf: asOf, digests: digests, blobOf: blobOf, references: references)
    }

    /// Brings `new` to `head`: the sectors of every change since, and of every blob whose
    /// references came or went, read again. False: too many changes, compute everything.
    private func update(_ new: inout State, to head: EntityChangeID, log: EntityChangeLog) throws -> Bool {
        guard head > new.asOf else { return true }
        guard head.rawValue - new.asOf.rawValue <= UInt64(maxIncrementalChanges) else { return false }
        let since = new.asOf
        new.asOf = head
        var dirty: [EntityName: Set<Character>] = [:]
        var referrers: Set<EntityKey> = []
        for key in try log.changedKeys(after: since, through: head) {
            guard let sector = Self.sectorOf(key) else { continue }
            dirty[key.name, default: []].insert(sector)
            if EntityName.blobReferrers.contains(key.name) { referrers.insert(key) }
        }
        try Self.refreshReferrers(Array(referrers), in: &new, log: log) { blobId in
            if let first = blobId.first { dirty[.blobs, default: []].insert(first) }
        }
        for (name, sectors) in try Self.members(of: dirty, references: new.references, log: log) {
            for (sector, members) in sectors {
                new.digests[name, default: [:]][String(sector)] = members.isEmpty ? nil : Self.digest(members)
            }
            if new.digests[name]?.isEmpty == true { new.digests[name] = nil }
        }
        return true
    }

    /// Brings the blob references of these notes, attachments and revisions to their latest
    /// changes, their rows read in one transaction; `changed` is told each blob that gained its
    /// first reference or lost its last.
    private static func refreshReferrers(
        _ keys: [EntityKey], in state: inout State, log: EntityChangeLog, changed: (String) -> Void
    ) throws {
        let live = try keys.map { key in try log.current(key).flatMap { $0.isSynced && !$0.isErased ? $0.id : nil } }
        let ids = live.compactMap { $0 }
        let rows = Dictionary(uniqueKeysWithValues: zip(ids, try log.rows(at: ids)))
        for (key, id) in zip(keys, live) {
            let blobId = id.flatMap { SyncServer.blobId(of: rows[$0] ?? nil) }
            let previous = state.blobOf[key]
            guard previous != blobId else { continue }
            state.blobOf[key] = blobId
            if let previous {
                let left = (state.references[previous] ?? 0) - 1
                state.references[previous] = left > 0 ? left : nil
                if left == 0 { changed(previous) }
            }
            if let blobId {
                let count = (state.references[blobId] ?? 0) + 1
                state.references[blobId] = count
                if count == 1 { changed(blobId) }
            }
        }
    }

    /// The members of the given sectors read again (an empty list: the sector has none now).
    private static func members(
        of sectors: [EntityName: Set<Character>], references: [String: Int], log: EntityChangeLog
    ) throws -> [EntityName: [Character: [Member]]] {
        var result: [EntityName: [Character: [Member]]] = [:]
        var firstBytes: [EntityName: Set<UInt8>] = [:]
        for (name, chars) in sectors {
            for char in chars {
                result[name, default: [:]][char] = []
                // Entity ids are ASCII (validated), so a sector is one first byte.
                if let byte = char.asciiValue { firstBytes[name, default: []].insert(byte) }
            }
        }
        try log.forEachCurrent(idFirstBytes: firstBytes) { key, entry in
            guard let (sector, member) = member(key, entry, references: references) else { return }
            result[key.name, default: [:]][sector, default: []].append(member)
        }
        return result
    }

    // MARK: - One sector

    struct Member {
        var id: String
        var hash: String
        var isErased: Bool
    }

    /// The check's sector of an entity: the first character of its entityId; nil for what the
    /// check leaves out (note_reordering).
    static func sectorOf(_ key: EntityKey) -> Character? {
        key.name == .noteReordering ? nil : key.id.first
    }

    /// An entity's latest change as a member of its sector; nil for what the check leaves out:
    /// non-synced changes, note_reordering, and a live blob nothing points at (`references`).
    static func member(_ key: EntityKey, _ entry: CurrentEntry, references: [String: Int]) -> (Character, Member)? {
        guard entry.isSynced, let sector = sectorOf(key) else { return nil }
        if key.name == .blobs && !entry.isErased && references[key.id] == nil { return nil }
        return (sector, Member(id: key.id, hash: entry.hash, isErased: entry.isErased))
    }

    /// Trilium's digest of a sector's members, in entityId order.
    static func digest(_ members: [Member]) -> String {
        // Trilium sorts with JavaScript's string order: UTF-16 code units. Entity ids are ASCII
        // (every change is validated), where that is byte order, which `<` on Swift strings gives
        // with a memcmp; comparing UTF-16 views was most of the check's time.
        let ascii = members.allSatisfy { $0.id.utf8.allSatisfy { $0 < 0x80 } }
        let sorted =
            ascii
            ? members.sorted { $0.id < $1.id }
            : members.sorted { $0.id.utf16.lexicographicallyPrecedes($1.id.utf16) }
        return ContentHash.sectorDigest(sorted.map { (hash: $0.hash, isErased: $0.isErased) })
    }
}

extension EntityName {
    /// What keeps a blob alive in Trilium: the entities whose rows point at one (`blobId`).
    static let blobReferrers: Set<EntityName> = [.notes, .attachments, .revisions]
}
