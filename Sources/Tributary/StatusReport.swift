import EventLog
import Foundation
import TributaryCore

/// `tributary status`: what a data directory holds.
public struct StatusReport: Codable, Sendable {
    public struct Counts: Codable, Sendable {
        public var live: Int
        public var erased: Int
    }

    public var dataDirectory: String
    public var instanceId: String
    public var head: UInt64
    public var changes: Int
    public var entities: [String: Counts]
    public var diskBytes: Int64
    public var indexCheckpoint: UInt64
    public var unindexed: Int
    /// Each view's checkpoint (the last change it has projected).
    public var views: [String: UInt64]
    public var viewsBytes: Int64

    /// Reads the status of an open store.
    public init(store: Store) throws {
        let log = store.log
        dataDirectory = store.dataDirectory
        instanceId = log.instanceId
        head = log.head.rawValue
        changes = try log.changeCount()
        entities = Dictionary(
            uniqueKeysWithValues: try log.entityCounts().map {
                ($0.key.rawValue, Counts(live: $0.value.live, erased: $0.value.erased))
            })
        diskBytes = allocatedBytes(Store.logPath(store.dataDirectory))
        let index = log.indexStatus
        indexCheckpoint = index.checkpoint.rawValue
        unindexed = Int(head - min(head, indexCheckpoint))
        views = try store.views?.states().mapValues { $0.lastEntityChangeId.rawValue } ?? [:]
        viewsBytes = ["", "-wal"].reduce(Int64(0)) { total, suffix in
            var info = stat()
            let path = store.dataDirectory + "/views.sqlite" + suffix
            return total + (stat(path, &info) == 0 ? Int64(info.st_blocks) * 512 : 0)
        }
    }

    /// Human-readable lines.
    public var text: String {
        var lines = [
            "data directory  \(dataDirectory)",
            "instanceId      \(instanceId)",
            "head id         \(head)",
            "changes         \(changes)",
            "disk            \(String(format: "%.1f", Double(diskBytes) / 1e6)) MB",
            "indexed up to   \(indexCheckpoint) (\(unindexed) behind)",
            "views           "
                + (views.isEmpty
                    ? "none"
                    : views.keys.sorted().map { "\($0) @ \(views[$0]!) (\(head - min(head, views[$0]!)) behind)" }
                        .joined(separator: ", ")),
            "views disk      \(String(format: "%.1f", Double(viewsBytes) / 1e6)) MB",
            "entities        live      erased",
        ]
        for name in entities.keys.sorted() {
            let c = entities[name]!
            lines.append(
                "  " + name.padding(toLength: 14, withPad: " ", startingAt: 0)
                    + String(c.live).leftPadded(8) + "  " + String(c.erased).leftPadded(8))
        }
        return lines.joined(separator: "\n")
    }

    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
    }
}

/// Bytes allocated on disk by the files directly in `directory`.
func allocatedBytes(_ directory: String) -> Int64 {
    let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    var total: Int64 = 0
    for file in files {
        var info = stat()
        if stat(directory + "/" + file, &info) == 0 { total += Int64(info.st_blocks) * 512 }
    }
    return total
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
