public import TributaryCore

/// What `verify` found.
public struct VerifyReport: Sendable {
    public struct Problem: Sendable, CustomStringConvertible {
        public enum Kind: String, Sendable {
            case corruptRecord, idGap, badKey, changeIdIndex, currentIndex, metadata
        }
        public var kind: Kind
        public var id: EntityChangeID?
        public var message: String
        public var description: String { message }
    }

    public var checkedRecords = 0
    public var firstId: EntityChangeID?
    public var lastId: EntityChangeID?
    public var indexCheckpoint: EntityChangeID = .zero
    /// The first problems found (at most `maxListed`); `problemCount` counts all.
    public var problems: [Problem] = []
    public var problemCount = 0
    static let maxListed = 200

    public var isSound: Bool { problemCount == 0 }

    mutating func add(_ kind: Problem.Kind, _ id: EntityChangeID?, _ message: String) {
        problemCount += 1
        if problems.count < VerifyReport.maxListed { problems.append(Problem(kind: kind, id: id, message: message)) }
    }
}

extension EntityChangeLog {
    /// Checks every record from `from` (inclusive): checksum and format, id order without gaps,
    /// and that `current` and `changeIds` agree with the log (for `from == 0`, also that they
    /// hold nothing else). Runs in one read transaction, so it sees one consistent state even
    /// while another process writes.
    public func verify(from: EntityChangeID = .zero, progress: ((EntityChangeID) -> Void)? = nil) throws
        -> VerifyReport
    {
        var report = VerifyReport()
        makeRoomBeforeALongRead()
        try read { txn in
            let checkpoint =
                try MetaKey.indexCheckpoint.withBytes { try txn.get(metaDB, $0) }.flatMap(IndexCoding.id(fromKey:))
                ?? .zero
            report.indexCheckpoint = checkpoint
            struct Seen {
                var latest: CurrentEntry
                var latestIndexed: EntityChangeID?
            }
            var seen: [EntityKey: Seen] = [:]
            var tailChangeIds: [String: EntityChangeID] = [:]
            var indexedRecords = 0
            var corrupt: Set<EntityChangeID> = []
            var previous: EntityChangeID?
            let start = from == .zero ? EntityChangeID(1) : from
            try IndexCoding.idKey(start).withUnsafeBytes { startKey in
                try txn.scan(changesDB, from: startKey) { key, value in
                    guard let id = IndexCoding.id(fromKey: key) else {
                        report.add(.badKey, nil, "a key of \(key.count) bytes in the changes table")
                        return true
                    }
                    if let previous, id != previous.next {
                        report.add(.idGap, id, "ids jump from \(previous) to \(id)")
                    } else if previous == nil, from == .zero, id != 1 {
                        report.add(.idGap, id, "the log starts at \(id), not 1")
                    }
                    previous = id
                    report.firstId = report.firstId ?? id
                    report.lastId = id
                    report.checkedRecords += 1
                    if report.checkedRecords % 100_000 == 0 { progress?(id) }
                    let view: RecordView
                    do throws(EventLogError) {
                        view = try RecordView(id: id, bytes: value)
                    } catch {
                        report.add(.corruptRecord, id, error.message)
                        corrupt.insert(id)
                        // Its index entries cannot be checked; count it so the totals still add up.
                        if id <= checkpoint { indexedRecords += 1 }
                        return true
                    }
                    let key = view.key
                    let changeId = view.changeId
                    if id <= checkpoint {
                        indexedRecords += 1
                        let indexed = try changeId.withBytes { try txn.get(changeIdsDB, $0) }.flatMap(
                            IndexCoding.id(fromKey:))
                        if indexed != id {
                            report.add(
                                .changeIdIndex, id,
                                "changeIds maps \(changeId) to \(indexed.map(String.init(describing:)) ?? "nothing"), the log has it at \(id)"
                            )
                        }
                    } else if let other = tailChangeIds.updateValue(id, forKey: changeId) {
                        report.add(.changeIdIndex, id, "changeId \(changeId) appears at \(other) and \(id)")
                    }
                    var entry = seen[key] ?? Seen(latest: view.currentEntry, latestIndexed: nil)
                    entry.latest = view.currentEntry
                    if id <= checkpoint { entry.latestIndexed = id }
                    seen[key] = entry
                    return true
                }
            }
            // `current` against the log. An index batch writes each entity's newest entry, which
            // may be past the checkpoint; the overlay covers the rest until the next batch.
            for (key, s) in seen {
                guard let value = try IndexCoding.currentKey(key).withUnsafeBytes({ try txn.get(currentDB, $0) }) else {
                    if s.latestIndexed != nil {
                        report.add(.currentIndex, s.latest.id, "current has no entry for \(key)")
                    }
                    continue
                }
                guard let stored = IndexCoding.currentEntry(fromValue: value) else {
                    report.add(.currentIndex, s.latest.id, "current's entry for \(key) cannot be decoded")
                    continue
                }
                if stored.id == s.latest.id {
                    if stored != s.latest {
                        report.add(.currentIndex, stored.id, "current for \(key) differs from record \(stored.id)")
                    }
                    continue
                }
                let acceptable: Bool
                if let indexed = s.latestIndexed {
                    acceptable =
                        stored.id == indexed
                        || (stored.id > checkpoint && stored.id > indexed && stored.id < s.latest.id)
                } else {
                    // Nothing of this entity at or below the checkpoint in the range checked.
                    acceptable = stored.id < start || (stored.id > checkpoint && stored.id < s.latest.id)
                }
                if !acceptable {
                    report.add(
                        .currentIndex, s.latest.id,
                        "current for \(key) points at \(stored.id); the log's latest is \(s.latest.id)")
                    continue
                }
                let record = try IndexCoding.idKey(stored.id).withUnsafeBytes { try txn.get(changesDB, $0) }
                let matches =
                    try record.map { try RecordView(id: stored.id, bytes: $0) }.map {
                        $0.key == key && $0.currentEntry == stored
                    } ?? false
                if !matches {
                    report.add(
                        .currentIndex, stored.id,
                        "current for \(key) points at \(stored.id), which is not that entity's record")
                }
            }
            if from == .zero {
                try txn.scan(currentDB, from: nil) { k, v in
                    // An entry of a damaged record was reported with that record.
                    if let entry = IndexCoding.currentEntry(fromValue: v), corrupt.contains(entry.id) { return true }
                    guard let key = IndexCoding.entityKey(fromCurrentKey: k) else {
                        report.add(.currentIndex, nil, "current has a key of \(k.count) bytes that names no entity")
                        return true
                    }
                    if seen[key] == nil {
                        report.add(.currentIndex, nil, "current has \(key), which no record in the log has")
                    }
                    return true
                }
                let indexedCount = try env.count(changeIdsDB, in: txn)
                if indexedCount != indexedRecords {
                    report.add(
                        .changeIdIndex, nil,
                        "changeIds has \(indexedCount) entries; the log has \(indexedRecords) changes up to the index checkpoint \(checkpoint)"
                    )
                }
                if let head = report.lastId, checkpoint > head {
                    report.add(.metadata, nil, "the index checkpoint \(checkpoint) is past the log head \(head)")
                }
            }
        }
        return report
    }
}
