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
        /// Column names as UTF-8, in order, for matching row members without making Strings.
        let columnNames: [[UInt8]]
        /// The column whose string values are base64 of bytes (`blobs.content`).
        let blobColumn: Int?
        let insertSQL: String
        let deleteRowSQL: String
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
            columnNames = columns.map { Array($0.name.utf8) }
            blobColumn = entity == .blobs ? 1 : nil
            let names = columns.map(\.name) + ["extra"]
            let values = Array(repeating: "?", count: names.count).joined(separator: ", ")
            deleteRowSQL = "DELETE FROM \(name) WHERE rowid = ?"
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
            let statement = try RowStatement(db, sql: table.replaceSQL)
            guard bindRow(logged, table, statement) else { continue }
            try statement.step()
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
                let delete = try RowStatement(db, sql: table.deleteRowSQL)
                delete.reset()
                delete.bind(1, old)
                try delete.step()
            }
            guard !change.isErased else { continue }
            let statement = try RowStatement(db, sql: table.insertSQL)
            guard bindRow(logged, table, statement) else { continue }
            try statement.step()
            rows[change.key] = db.lastInsertedRowID
        }
    }

    /// Binds the row's values in column order, then `extra` (unknown members as a JSON object),
    /// straight from the row's JSON; false when the change carries no row.
    private func bindRow(_ logged: LoggedChange, _ table: Table, _ statement: RowStatement) -> Bool {
        guard let entity = logged.entity else { return false }
        statement.reset()
        for (i, value) in table.defaults.enumerated() where !value.isNull { statement.bind(i + 1, value) }
        var extra: [(key: String, raw: [UInt8])] = []
        entity.forEachMember { name, member in
            guard let i = table.columnNames.firstIndex(where: { $0.elementsEqual(name) }) else {
                let key = String(decoding: name, as: UTF8.self)
                extra.removeAll { $0.key == key }
                extra.append((key, Array(member.raw)))
                return
            }
            bind(member, at: i + 1, blob: i == table.blobColumn, statement)
        }
        statement.bindText(1, logged.change.entityId)
        if extra.isEmpty {
            statement.bindNull(table.columns.count + 1)
        } else {
            var w = JSONWriter()
            w.raw("{")
            for (k, member) in extra.enumerated() {
                if k > 0 { w.raw(",") }
                w.string(member.key)
                w.raw(":")
                w.raw(member.raw)
            }
            w.raw("}")
            w.bytes.withUnsafeBytes { statement.bindText(table.columns.count + 1, $0) }
        }
        return true
    }

    /// A member as SQLite stores it: strings as text, integers and reals, booleans as 0/1,
    /// containers as their JSON text; blob content (base64 on the wire) as bytes.
    private func bind(_ member: RowMember, at index: Int, blob: Bool, _ statement: RowStatement) {
        switch member.kind {
        case .null: statement.bindNull(index)
        case .bool(let b): statement.bind(index, b ? 1 : 0 as Int64)
        case .number:
            if let i = Self.integer(member.text) {
                statement.bind(index, i)
            } else {
                statement.bind(index, Double(String(decoding: member.text, as: UTF8.self)) ?? 0)
            }
        case .string:
            if blob, let bytes = Data(base64Encoded: String(decoding: member.text, as: UTF8.self)) {
                bytes.withUnsafeBytes { statement.bindBlob(index, $0) }
            } else {
                statement.bindText(index, member.text)
            }
        case .container: statement.bindText(index, member.raw)
        }
    }

    /// A JSON number that is an Int64 (no fraction, no exponent, in range), else nil.
    static func integer(_ digits: UnsafeRawBufferPointer) -> Int64? {
        var i = 0
        let negative = digits.first == UInt8(ascii: "-")
        if negative { i = 1 }
        guard i < digits.count else { return nil }
        var magnitude: UInt64 = 0
        while i < digits.count {
            let d = digits[i] &- UInt8(ascii: "0")
            guard d < 10 else { return nil }
            let (times10, o1) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(UInt64(d))
            guard !o1, !o2 else { return nil }
            magnitude = sum
            i += 1
        }
        if negative { return magnitude <= UInt64(Int64.max) + 1 ? Int64(bitPattern: 0 &- magnitude) : nil }
        return magnitude <= UInt64(Int64.max) ? Int64(magnitude) : nil
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
}
