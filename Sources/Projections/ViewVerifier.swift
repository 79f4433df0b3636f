import Crypto
public import EventLog
import Foundation
public import GRDB
import TributaryCore

/// A way in which a view differs from a fresh rebuild of it.
public struct ViewDifference: Sendable, CustomStringConvertible {
    public var view: String
    public var table: String?
    /// The first differing row's key, in the table's key order.
    public var key: String?
    public var message: String

    public var description: String {
        var text = "view \(view)"
        if let table { text += ", table \(table)" }
        if let key { text += ", key \(key)" }
        return text + ": " + message
    }
}

/// Proves the views equal the log: each view's tables are digested in key order and compared
/// with the digest of a rebuild, up to the same checkpoint, into a scratch database. A view that
/// was never built has nothing to differ; the caller reports it from the view states.
public enum ViewVerifier {
    public static func verify(
        log: EntityChangeLog, views: ViewStore, projectors: [any Projector] = StandardProjectors.all,
        scratchDirectory: String
    ) async throws -> [ViewDifference] {
        var differences: [ViewDifference] = []
        for projector in projectors {
            let live = try await views.pool.read { db -> (ViewStore.State?, [String: Digest]) in
                guard let state = try ViewStore.states(db)[projector.name] else { return (nil, [:]) }
                var digests: [String: Digest] = [:]
                for table in projector.tables { digests[table.name] = try digest(db, table) }
                return (state, digests)
            }
            guard let state = live.0 else { continue }
            let path = scratchDirectory + "/verify-\(projector.name)-\(UUID().uuidString.prefix(8)).sqlite"
            defer { ViewStore.removeScratch(path) }
            var configuration = Configuration()
            configuration.prepareDatabase { db in
                try db.execute(sql: "PRAGMA synchronous = OFF; \(ViewStore.pragmas)")
            }
            let scratch = try DatabaseQueue(path: path, configuration: configuration)
            try await scratch.write { db in
                try projector.createTables(db)
                try projector.createIndexes(db)
            }
            var cursor = EntityChangeID.zero
            while cursor < state.lastEntityChangeId {
                let page = try log.changes(after: cursor, limit: 10_000).filter { $0.id <= state.lastEntityChangeId }
                guard let last = page.last?.id else { break }
                try await scratch.write { db in try projector.apply(page[...], db) }
                cursor = last
            }
            let rebuilt = try await scratch.read { db in
                try Dictionary(uniqueKeysWithValues: projector.tables.map { ($0.name, try digest(db, $0)) })
            }
            for table in projector.tables where live.1[table.name] != rebuilt[table.name] {
                differences.append(
                    try await firstDifference(projector, table, state, views: views, scratch: scratch))
            }
        }
        return differences
    }

    /// SHA-256 over every row in key order, and the row count.
    public struct Digest: Sendable, Hashable {
        public var sha256: String
        public var rows: Int
    }

    public static func digest(_ db: Database, _ table: ViewTable) throws -> Digest {
        var hasher = SHA256()
        var rows = 0
        let cursor = try Row.fetchCursor(
            db, sql: "SELECT * FROM \(table.name) ORDER BY \(table.key.joined(separator: ", "))")
        var buffer: [UInt8] = []
        while let row = try cursor.next() {
            buffer.removeAll(keepingCapacity: true)
            for value in row.databaseValues { encode(value, into: &buffer) }
            buffer.append(0x0A)
            hasher.update(data: buffer)
            rows += 1
        }
        return Digest(sha256: hasher.finalize().map { String(format: "%02x", $0) }.joined(), rows: rows)
    }

    /// A value with its type tag and length, so different rows never encode alike.
    static func encode(_ value: DatabaseValue, into buffer: inout [UInt8]) {
        switch value.storage {
        case .null: buffer.append(0)
        case .int64(let i):
            buffer.append(1)
            withUnsafeBytes(of: i.littleEndian) { buffer.append(contentsOf: $0) }
        case .double(let d):
            buffer.append(2)
            withUnsafeBytes(of: d.bitPattern.littleEndian) { buffer.append(contentsOf: $0) }
        case .string(let s):
            buffer.append(3)
            withUnsafeBytes(of: UInt32(s.utf8.count).littleEndian) { buffer.append(contentsOf: $0) }
            buffer.append(contentsOf: s.utf8)
        case .blob(let data):
            buffer.append(4)
            withUnsafeBytes(of: UInt32(data.count).littleEndian) { buffer.append(contentsOf: $0) }
            buffer.append(contentsOf: data)
        }
    }

    /// Walks the live table and the rebuilt one together in key order (a merge) to the smallest
    /// key whose row differs: a row only one side has must not shift the rest out of step.
    static func firstDifference(
        _ projector: any Projector, _ table: ViewTable, _ state: ViewStore.State, views: ViewStore,
        scratch: DatabaseQueue
    ) async throws -> ViewDifference {
        let order = "SELECT * FROM \(table.name) ORDER BY \(table.key.joined(separator: ", "))"
        return try await views.pool.read { live in
            guard try ViewStore.states(live)[projector.name] == state else {
                return ViewDifference(
                    view: projector.name, table: table.name,
                    message: "the view moved on while it was being verified; verify again on a quiet node")
            }
            return try scratch.read { rebuilt in
                let a = try Row.fetchCursor(live, sql: order)
                let b = try Row.fetchCursor(rebuilt, sql: order)
                func key(_ row: Row) -> String {
                    table.key.map { "\(row[$0] as DatabaseValue)" }.joined(separator: "/")
                }
                func keyValues(_ row: Row) -> [DatabaseValue] { table.key.map { row[$0] } }
                func difference(_ row: Row, _ message: String) -> ViewDifference {
                    ViewDifference(view: projector.name, table: table.name, key: key(row), message: message)
                }
                var x = try a.next()
                var y = try b.next()
                while true {
                    switch (x, y) {
                    case (nil, nil):
                        return ViewDifference(view: projector.name, table: table.name, message: "digests differ")
                    case (let x?, nil):
                        return difference(x, "extra row in the view: a rebuild does not have it")
                    case (nil, let y?):
                        return difference(y, "row missing in the view: a rebuild has it")
                    case (let row?, let other?):
                        switch compareKeys(keyValues(row), keyValues(other)) {
                        case .orderedAscending:
                            return difference(row, "extra row in the view: a rebuild does not have it")
                        case .orderedDescending:
                            return difference(other, "row missing in the view: a rebuild has it")
                        case .orderedSame:
                            if row != other {
                                return difference(
                                    row,
                                    "the row differs from a rebuild's: \(row.description.prefix(300)) vs \(other.description.prefix(300))"
                                )
                            }
                        }
                    }
                    x = try a.next()
                    y = try b.next()
                }
            }
        }
    }

    /// Compares two keys as SQLite's `ORDER BY` does with the BINARY collation: column by column,
    /// NULL before numbers before text before blobs; numbers by value, text and blobs bytewise.
    static func compareKeys(_ a: [DatabaseValue], _ b: [DatabaseValue]) -> ComparisonResult {
        for (x, y) in zip(a, b) {
            let result = compare(x, y)
            if result != .orderedSame { return result }
        }
        return a.count == b.count ? .orderedSame : (a.count < b.count ? .orderedAscending : .orderedDescending)
    }

    static func compare(_ a: DatabaseValue, _ b: DatabaseValue) -> ComparisonResult {
        func rank(_ v: DatabaseValue) -> Int {
            switch v.storage {
            case .null: 0
            case .int64, .double: 1
            case .string: 2
            case .blob: 3
            }
        }
        func ordered<T: Comparable>(_ x: T, _ y: T) -> ComparisonResult {
            x < y ? .orderedAscending : (x == y ? .orderedSame : .orderedDescending)
        }
        func bytewise(_ x: some Sequence<UInt8>, _ y: some Sequence<UInt8>) -> ComparisonResult {
            if x.lexicographicallyPrecedes(y) { return .orderedAscending }
            return y.lexicographicallyPrecedes(x) ? .orderedDescending : .orderedSame
        }
        switch (a.storage, b.storage) {
        case (.int64(let x), .int64(let y)): return ordered(x, y)
        case (.int64(let x), .double(let y)): return ordered(Double(x), y)
        case (.double(let x), .int64(let y)): return ordered(x, Double(y))
        case (.double(let x), .double(let y)): return ordered(x, y)
        case (.string(let x), .string(let y)): return bytewise(x.utf8, y.utf8)
        case (.blob(let x), .blob(let y)): return bytewise(x, y)
        default: return ordered(rank(a), rank(b))
        }
    }
}
