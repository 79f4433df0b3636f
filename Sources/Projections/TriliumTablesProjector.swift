import Foundation
public import GRDB
public import TributaryCore

/// Trilium's synced tables (`notes`, `branches`, `attributes`, `revisions`, `attachments`,
/// `blobs`, `options`, `etapi_tokens`) with Trilium's columns, so the database reads like a
/// Trilium document. Unknown fields of a row are kept in the `extra` column as a JSON object.
public struct TriliumTablesProjector: Projector {
    public let name = "trilium"
    public let schemaVersion = 1

    public init() {}

    struct Column {
        let name: String
        let type: String
        let defaultValue: DatabaseValue
    }

    struct Table {
        let entity: EntityName
        let columns: [Column]
        let defaults: [DatabaseValue]
        let indexes: [String]
        let name: String
        let primaryKey: String
        /// Column name → index in `columns`.
        let position: [String: Int]
        let insertSQL: String
        let replaceSQL: String
        let createSQL: String

        init(_ entity: EntityName, _ columns: [Column], indexes: [String] = []) {
            self.entity = entity
            self.columns = columns
            name = entity.rawValue
            primaryKey = columns[0].name
            defaults = columns.map { $0.defaultValue }
            // The key is a unique index rather than a PRIMARY KEY so a rebuild can load rows
            // first and index them once (docs/decisions/0006).
            self.indexes =
                [
                    "CREATE UNIQUE INDEX IF NOT EXISTS IDX_\(entity.rawValue)_pk ON \(entity.rawValue) (\(columns[0].name))"
                ]
                + indexes.map { $0.replacingOccurrences(of: "CREATE INDEX ", with: "CREATE INDEX IF NOT EXISTS ") }
            position = Dictionary(uniqueKeysWithValues: columns.enumerated().map { ($1.name, $0) })
            let names = columns.map(\.name) + ["extra"]
            let values = Array(repeating: "?", count: names.count).joined(separator: ", ")
            insertSQL = "INSERT INTO \(name) (\(names.joined(separator: ", "))) VALUES (\(values))"
            replaceSQL = "INSERT OR REPLACE INTO \(name) (\(names.joined(separator: ", "))) VALUES (\(values))"
            var parts = ["\(columns[0].name) \(columns[0].type) NOT NULL"]
            for column in columns.dropFirst() {
                var part = "\(column.name) \(column.type)"
                switch column.defaultValue.storage {
                case .int64(let i): part += " DEFAULT \(i)"
                case .string(let text): part += " DEFAULT '\(text.replacingOccurrences(of: "'", with: "''"))'"
                default: break
                }
                parts.append(part)
            }
            parts.append("extra TEXT")
            createSQL = "CREATE TABLE \(name) (\(parts.joined(separator: ", ")))"
        }
    }

    static func text(_ name: String, _ value: String? = nil) -> Column {
        Column(name: name, type: "TEXT", defaultValue: value.map { $0.databaseValue } ?? .null)
    }

    static func int(_ name: String, _ value: Int64? = nil) -> Column {
        Column(name: name, type: "INTEGER", defaultValue: value.map { $0.databaseValue } ?? .null)
    }

    /// Trilium's `schema.sql` (trilium-protocol.md, Appendix A), with Trilium's useful indexes.
    static let tables: [Table] = [
        Table(
            .notes,
            [
                text("noteId"), text("title", "note"), int("isProtected", 0), text("type", "text"),
                text("mime", "text/html"), text("blobId"), int("isDeleted", 0), text("deleteId"),
                text("dateCreated"), text("dateModified"), text("utcDateCreated"), text("utcDateModified"),
            ], indexes: ["CREATE INDEX IDX_notes_blobId ON notes (blobId)"]),
        Table(
            .branches,
            [
                text("branchId"), text("noteId"), text("parentNoteId"), int("notePosition"), text("prefix"),
                int("isExpanded", 0), int("isDeleted", 0), text("deleteId"), text("utcDateModified"),
            ],
            indexes: [
                "CREATE INDEX IDX_branches_noteId_parentNoteId ON branches (noteId, parentNoteId)",
                "CREATE INDEX IDX_branches_parentNoteId ON branches (parentNoteId)",
            ]),
        Table(
            .attributes,
            [
                text("attributeId"), text("noteId"), text("type"), text("name"), text("value", ""),
                int("position", 0), text("utcDateModified"), int("isDeleted", 0), text("deleteId"),
                int("isInheritable", 0),
            ],
            indexes: [
                "CREATE INDEX IDX_attributes_name_value ON attributes (name, value)",
                "CREATE INDEX IDX_attributes_noteId ON attributes (noteId)",
            ]),
        Table(
            .revisions,
            [
                text("revisionId"), text("noteId"), text("type", ""), text("mime", ""), text("title"),
                int("isProtected", 0), text("blobId"), text("utcDateLastEdited"), text("utcDateCreated"),
                text("utcDateModified"), text("dateLastEdited"), text("dateCreated"),
            ],
            indexes: [
                "CREATE INDEX IDX_revisions_noteId ON revisions (noteId)",
                "CREATE INDEX IDX_revisions_blobId ON revisions (blobId)",
            ]),
        Table(
            .attachments,
            [
                text("attachmentId"), text("ownerId"), text("role"), text("mime"), text("title"),
                int("isProtected", 0), int("position", 0), text("blobId"), text("dateModified"),
                text("utcDateModified"), text("utcDateScheduledForErasureSince"), int("isDeleted", 0),
                text("deleteId"),
            ],
            indexes: [
                "CREATE INDEX IDX_attachments_ownerId_role ON attachments (ownerId, role)",
                "CREATE INDEX IDX_attachments_blobId ON attachments (blobId)",
            ]),
        // Content is stored as bytes, as Trilium stores content received by sync.
        Table(
            .blobs,
            [
                text("blobId"), Column(name: "content", type: "BLOB", defaultValue: .null), text("dateModified"),
                text("utcDateModified"),
            ]),
        Table(.options, [text("name"), text("value"), int("isSynced", 0), text("utcDateModified")]),
        Table(
            .etapiTokens,
            [
                text("etapiTokenId"), text("name"), text("tokenHash"), text("utcDateCreated"),
                text("utcDateModified"), int("isDeleted", 0),
            ]),
    ]

    static let byEntity: [EntityName: Table] = Dictionary(uniqueKeysWithValues: tables.map { ($0.entity, $0) })

    public var tables: [ViewTable] {
        TriliumTablesProjector.tables.map { ViewTable($0.name, key: [$0.primaryKey]) }
    }

    public func createTables(_ db: Database) throws {
        for table in TriliumTablesProjector.tables { try db.execute(sql: table.createSQL) }
    }

    public func createIndexes(_ db: Database) throws {
        for table in TriliumTablesProjector.tables {
            for index in table.indexes { try db.execute(sql: index) }
        }
    }

    public func apply(_ changes: ArraySlice<LoggedChange>, _ db: Database) throws {
        for logged in changes {
            let change = logged.change
            if change.entityName == .noteReordering {
                try reorder(logged, db) { branchId in
                    (
                        try db.cachedStatement(sql: "UPDATE branches SET notePosition = ? WHERE branchId = ?"),
                        branchId.databaseValue
                    )
                }
                continue
            }
            guard let table = TriliumTablesProjector.byEntity[change.entityName] else { continue }
            if change.isErased {
                try db.cachedStatement(sql: "DELETE FROM \(table.name) WHERE \(table.primaryKey) = ?")
                    .execute(arguments: [change.entityId])
                continue
            }
            guard let values = try rowValues(logged, table) else { continue }
            let statement = try db.cachedStatement(sql: table.replaceSQL)
            statement.setUncheckedArguments(StatementArguments(values))
            try statement.execute()
        }
    }

    public func load(_ changes: ArraySlice<LoggedChange>, _ db: Database, rows: inout [EntityKey: Int64]) throws {
        for logged in changes {
            let change = logged.change
            if change.entityName == .noteReordering {
                let known = rows
                try reorder(logged, db) { branchId in
                    guard let rowid = known[EntityKey(.branches, branchId)] else { return nil }
                    return (
                        try db.cachedStatement(sql: "UPDATE branches SET notePosition = ? WHERE rowid = ?"),
                        rowid.databaseValue
                    )
                }
                continue
            }
            guard let table = TriliumTablesProjector.byEntity[change.entityName] else { continue }
            if let old = rows.removeValue(forKey: change.key) {
                try db.cachedStatement(sql: "DELETE FROM \(table.name) WHERE rowid = ?").execute(arguments: [old])
            }
            guard !change.isErased, let values = try rowValues(logged, table) else { continue }
            let statement = try db.cachedStatement(sql: table.insertSQL)
            statement.setUncheckedArguments(StatementArguments(values))
            try statement.execute()
            rows[change.key] = db.lastInsertedRowID
        }
    }

    /// The row's values in column order, then `extra` (unknown members as a JSON object).
    private func rowValues(_ logged: LoggedChange, _ table: Table) throws -> [DatabaseValue]? {
        guard let entity = logged.entity else { return nil }
        let row: JSONObject
        do {
            row = try entity.object()
        } catch {
            throw ProjectionError(.badChange, "change \(logged.id): \(error)")
        }
        var values = table.defaults
        var extra: [JSONObject.Member] = []
        for member in row.members {
            if let i = table.position[member.key] {
                values[i] = databaseValue(member.value, blob: table.entity == .blobs && i == 1)
            } else {
                extra.removeAll { $0.key == member.key }
                extra.append(member)
            }
        }
        values[0] = logged.change.entityId.databaseValue
        values.append(
            extra.isEmpty
                ? .null : String(decoding: JSONValue.object(JSONObject(extra)).jsonBytes, as: UTF8.self).databaseValue)
        return values
    }

    /// `note_reordering`: the new positions of a parent's branches (Trilium updates only
    /// `notePosition`, without touching anything else).
    private func reorder(
        _ logged: LoggedChange, _ db: Database, _ locate: (String) throws -> (Statement, DatabaseValue)?
    ) throws {
        guard let positions = try? logged.entity?.object() else { return }
        for member in positions.members {
            guard case .number(let text) = member.value, let position = Int64(text),
                let (statement, row) = try locate(member.key)
            else { continue }
            try statement.execute(arguments: [position, row])
        }
    }

    /// A row value as SQLite stores it: strings as text, integers and reals, booleans as 0/1,
    /// containers as their JSON text; blob content (base64 on the wire) as bytes.
    func databaseValue(_ value: JSONValue, blob: Bool) -> DatabaseValue {
        switch value {
        case .null: return .null
        case .bool(let b): return (b ? 1 : 0 as Int64).databaseValue
        case .number(let text):
            if let i = Int64(text) { return i.databaseValue }
            return (Double(text) ?? 0).databaseValue
        case .string(let s):
            if blob, let bytes = Data(base64Encoded: s) { return bytes.databaseValue }
            return s.databaseValue
        case .array, .object: return String(decoding: value.jsonBytes, as: UTF8.self).databaseValue
        }
    }
}
