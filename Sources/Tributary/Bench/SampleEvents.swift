public import TributaryCore

/// Deterministic Trilium sync records shaped like `shared/bench/gen.py`'s (same entity mix, row
/// sizes and timestamp spacing), generated in process for tests and `tributary bench --events`.
public struct SampleEvents: Sendable {
    public var seed: UInt64

    public init(seed: UInt64 = 42) { self.seed = seed }

    /// `count` records; the first M of `records(n)` equal `records(M)`.
    public func records(_ count: Int, startMillis: Int64 = 1_704_067_200_000) -> [ChangeRecord] {
        var rng = SplitMix64(seed: seed)
        let instances = (0..<4).map { _ in RandomID.make(length: 12, using: &rng) }
        let components = (0..<64).map { _ in RandomID.make(length: 10, using: &rng) }
        return (0..<count).map { i in
            record(i, rng: &rng, instances: instances, components: components, startMillis: startMillis)
        }
    }

    func record(
        _ i: Int, rng: inout SplitMix64, instances: [String], components: [String], startMillis: Int64
    ) -> ChangeRecord {
        let pick = Int(rng.next() % 100)
        let name: EntityName =
            pick < 30 ? .notes : pick < 60 ? .branches : pick < 90 ? .attributes : pick < 95 ? .revisions : .blobs
        let id = RandomID.make(length: 12, using: &rng)
        let erased = rng.next() % 100 == 0
        let date = UTCDateTime(millisecondsSinceEpoch: startMillis + Int64(i) * 5)
        let change = EntityChange(
            entityName: name, entityId: id, hash: RandomID.make(length: 10, using: &rng), isErased: erased,
            changeId: RandomID.make(length: 12, using: &rng), componentId: components[Int(rng.next() % 64)],
            instanceId: instances[Int(rng.next() % 4)], isSynced: true, utcDateChanged: date)
        guard !erased else { return ChangeRecord(change: change, entity: nil) }
        return ChangeRecord(change: change, entity: EntityRow(row(name, id, date, &rng)))
    }

    func row(_ name: EntityName, _ id: String, _ date: UTCDateTime, _ rng: inout SplitMix64) -> JSONObject {
        let utc = JSONValue.string(date.description)
        let local = JSONValue.string(date.description.replacingOccurrences(of: "Z", with: "+0100"))
        func filler(_ n: Int) -> String {
            let words = ["note", "tree", "branch", "sync", "log", "entity", "replay", "stream", "commit", "draft"]
            var s = ""
            while s.utf8.count < n { s += words[Int(rng.next() % UInt64(words.count))] + " " }
            return String(s.prefix(n))
        }
        var object: JSONObject
        let target = name == .blobs ? 3584 + Int(rng.next() % 1025) : 260 + Int(rng.next() % 81)
        let padKey: String
        switch name {
        case .notes:
            object = [
                "noteId": .string(id), "title": .string(""), "isProtected": .number(0), "type": .string("text"),
                "mime": .string("text/html"), "blobId": .string(RandomID.make(length: 20, using: &rng)),
                "isDeleted": .number(0), "deleteId": .null, "dateCreated": local, "dateModified": local,
                "utcDateCreated": utc, "utcDateModified": utc,
            ]
            padKey = "title"
        case .branches:
            object = [
                "branchId": .string(id), "noteId": .string(RandomID.make(length: 12, using: &rng)),
                "parentNoteId": .string(RandomID.make(length: 12, using: &rng)),
                "notePosition": .number(Int(rng.next() % 1000) * 10), "prefix": .string(""),
                "isExpanded": .number(Int(rng.next() % 2)), "isDeleted": .number(0), "deleteId": .null,
                "utcDateModified": utc,
            ]
            padKey = "prefix"
        case .attributes:
            object = [
                "attributeId": .string(id), "noteId": .string(RandomID.make(length: 12, using: &rng)),
                "type": .string(rng.next() % 2 == 0 ? "label" : "relation"), "name": .string(filler(8)),
                "value": .string(""), "position": .number(Int(rng.next() % 100) * 10), "utcDateModified": utc,
                "isDeleted": .number(0), "deleteId": .null, "isInheritable": .number(Int(rng.next() % 2)),
            ]
            padKey = "value"
        case .revisions:
            object = [
                "revisionId": .string(id), "noteId": .string(RandomID.make(length: 12, using: &rng)),
                "type": .string("text"), "mime": .string("text/html"), "title": .string(""),
                "isProtected": .number(0), "blobId": .string(RandomID.make(length: 20, using: &rng)),
                "utcDateLastEdited": utc, "utcDateCreated": utc, "utcDateModified": utc, "dateLastEdited": local,
                "dateCreated": local,
            ]
            padKey = "title"
        default:
            object = ["blobId": .string(id), "content": .string(""), "dateModified": local, "utcDateModified": utc]
            padKey = "content"
        }
        let need = max(0, target - EntityRow(object).bytes.count)
        if name == .blobs {
            let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
            let n = need / 4 * 4
            object[padKey] = .string(
                String(decoding: (0..<n).map { _ in alphabet[Int(rng.next() % 64)] }, as: UTF8.self))
        } else {
            object[padKey] = .string(filler(need))
        }
        return object
    }
}

/// A small, fast, seedable generator (Vigna's SplitMix64) for reproducible test data.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
