public import GRDB
public import TributaryCore

/// A table a projector owns, and the columns that order its rows (for digests).
public struct ViewTable: Sendable, Hashable {
    public var name: String
    public var key: [String]

    public init(_ name: String, key: [String]) {
        self.name = name
        self.key = key
    }
}

/// A view of the log: tables in `views.sqlite` maintained from the changes in id order.
///
/// A projector is stateless: the runner keeps its checkpoint in `projector_state` and commits
/// it in the same transaction as the rows `apply` writes, so adding a view is one new type.
///
/// Two ways in: `apply` keeps a built view current (its indexes exist, so upserts find rows by
/// key); `load` builds a view from scratch into tables without indexes — each entity's row is
/// found through `rows` (entity → rowid) instead — and the indexes are created once at the end,
/// which on this machine is several times faster than maintaining them row by row.
public protocol Projector: Sendable {
    /// Stable name: the `projector_state` key and the argument of `tributary rebuild`.
    var name: String { get }
    /// Bump when the tables or what goes into them change; the view is then rebuilt from id 0.
    var schemaVersion: Int { get }
    /// The tables this projector owns.
    var tables: [ViewTable] { get }
    /// Creates the tables, without indexes.
    func createTables(_ db: Database) throws
    /// Creates the indexes, the unique ones on each table's key included (idempotent).
    func createIndexes(_ db: Database) throws
    /// Applies changes, in id order, to a built view (indexes present).
    func apply(_ changes: ArraySlice<LoggedChange>, _ db: Database) throws
    /// Applies changes, in id order, to a view being built (no indexes; `rows` locates rows).
    func load(_ changes: ArraySlice<LoggedChange>, _ db: Database, rows: inout [EntityKey: Int64]) throws
}

extension Projector {
    /// A projector without a faster bulk path builds with its indexes in place.
    public func load(_ changes: ArraySlice<LoggedChange>, _ db: Database, rows: inout [EntityKey: Int64]) throws {
        try createIndexes(db)
        try apply(changes, db)
    }

    /// Drops every table of this projector from the main database (never from an attached one:
    /// an unqualified DROP of a table main lacks would find a rebuild's copy of it).
    public func dropTables(_ db: Database) throws {
        for table in tables { try db.execute(sql: "DROP TABLE IF EXISTS main.\(table.name.quotedDatabaseIdentifier)") }
    }
}

/// The views Tributary maintains.
public enum StandardProjectors {
    public static let all: [any Projector] = [TriliumTablesProjector(), EntityChangesProjector()]

    public static func named(_ names: [String]) throws -> [any Projector] {
        try names.map { name in
            guard let projector = all.first(where: { $0.name == name }) else {
                throw ProjectionError(
                    .unknownView, "unknown view '\(name)'; views: \(all.map(\.name).joined(separator: ", "))")
            }
            return projector
        }
    }
}
