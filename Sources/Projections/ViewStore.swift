internal import CSQLiteSettings
import Foundation
public import GRDB
public import TributaryCore

/// `<data>/views.sqlite`: the projected views and `projector_state`, in WAL mode so readers
/// never block the projector (and the projector never blocks them).
public final class ViewStore: Sendable {
    public let path: String
    public let pool: DatabasePool

    /// Opens (creating unless `readOnly`) the views database.
    public init(path: String, readOnly: Bool = false) throws {
        self.path = path
        var configuration = Configuration()
        configuration.readonly = readOnly
        configuration.label = "views"
        configuration.prepareDatabase { db in
            // Views are derived and rebuildable: NORMAL keeps WAL safe from corruption without an
            // fsync per projected batch.
            try db.execute(sql: "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -65536; \(ViewStore.pragmas)")
        }
        pool = try DatabasePool(path: path, configuration: configuration)
        if !readOnly {
            // Scratch databases of a rebuild that did not finish (the process died).
            let directory = (path as NSString).deletingLastPathComponent
            let prefix = (path as NSString).lastPathComponent + ViewStore.scratchInfix
            for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            where name.hasPrefix(prefix) {
                try? FileManager.default.removeItem(atPath: directory + "/" + name)
            }
            try pool.write { db in
                try db.execute(
                    sql: """
                        CREATE TABLE IF NOT EXISTS projector_state (
                            projector TEXT PRIMARY KEY NOT NULL,
                            lastEntityChangeId INTEGER NOT NULL,
                            schemaVersion INTEGER NOT NULL,
                            rebuiltAt TEXT)
                        """)
            }
        }
    }

    /// Process-wide SQLite settings, for an executable's start before SQLite is first used
    /// (afterwards it changes nothing). It turns SQLite's memory statistics off: every SQLite
    /// allocation takes their one global mutex, and the view builders (a thread per view)
    /// contended on it — a rebuild of 1M changes took 22 s with them, 19 s without. False if
    /// SQLite was already in use.
    @discardableResult
    public static func configureProcess() -> Bool {
        tributary_sqlite_disable_memstatus() == 0
    }

    static let scratchInfix = ".rebuild-"

    /// For every connection to views or their scratch copies. Debian builds SQLite with
    /// secure_delete on, which overwrites every freed page and deleted cell with zeros: dropping
    /// the views of 1M changes took 8.6 s instead of 0.5 s, and every replaced row paid too.
    /// Nothing is hidden by it here — the log keeps every row ever written (docs/decisions/0010).
    static let pragmas = "PRAGMA secure_delete = OFF"

    /// Where a rebuild loads `view` before copying it in.
    func scratchPath(for view: String) -> String { path + ViewStore.scratchInfix + view }

    /// Removes a scratch database (a rebuild's or the verifier's) with its journal files.
    static func removeScratch(_ path: String) {
        for suffix in ["", "-journal", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
    }

    public static func path(inDataDirectory dataDirectory: String) -> String { dataDirectory + "/views.sqlite" }

    /// A projector's bookkeeping row.
    public struct State: Sendable, Hashable {
        public var projector: String
        public var lastEntityChangeId: EntityChangeID
        public var schemaVersion: Int
    }

    /// Every projector's state, by name.
    public func states() throws -> [String: State] {
        try pool.read { db in try ViewStore.states(db) }
    }

    static func states(_ db: Database) throws -> [String: State] {
        guard try db.tableExists("projector_state") else { return [:] }
        var states: [String: State] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT projector, lastEntityChangeId, schemaVersion FROM projector_state")
        {
            let name: String = row[0]
            let id: Int64 = row[1]
            states[name] = State(projector: name, lastEntityChangeId: EntityChangeID(UInt64(id)), schemaVersion: row[2])
        }
        return states
    }

    static func setCheckpoint(_ db: Database, _ projector: String, _ id: EntityChangeID) throws {
        try db.cachedStatement(sql: "UPDATE projector_state SET lastEntityChangeId = ? WHERE projector = ?")
            .execute(arguments: [Int64(bitPattern: id.rawValue), projector])
    }

    /// Copies the views, as of one read snapshot, into a new database at `path` with SQLite's
    /// online backup: the projector and readers go on meanwhile.
    public func backup(to path: String) throws {
        do {
            let destination = try DatabaseQueue(path: path)
            try pool.backup(to: destination)
            try destination.close()
        } catch let error as DatabaseError {
            // A failed backup step's own message is lost on the way ("not an error"); its code is not.
            if error.resultCode == .SQLITE_FULL {
                throw ProjectionError(.diskFull, "the disk is full: the views could not be copied to \(path)")
            }
            throw ProjectionError(.storage, "the views could not be copied to \(path): \(error)")
        }
    }

    public func close() throws { try pool.close() }
}
