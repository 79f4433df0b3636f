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
public protocol Projector: Sendable {
    /// Stable name: the `projector_state` key and the argument of `tributary rebuild`.
    var name: String { get }
    /// Bump when the tables or what goes into them change; the view is then rebuilt from id 0.
    var schemaVersion: Int { get }
    /// The tables this projector owns.
    var tables: [ViewTable] { get }
    /// Creates the tables and their indexes (the database has none of them).
    func createTables(_ db: Database) throws
    /// Applies changes, in id order, inside the caller's transaction.
    func apply(_ changes: ArraySlice<LoggedChange>, _ db: Database) throws
}

extension Projector {
    /// Drops every table of this projector.
    public func dropTables(_ db: Database) throws {
        for table in tables { try db.execute(sql: "DROP TABLE IF EXISTS \(table.name.quotedDatabaseIdentifier)") }
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
