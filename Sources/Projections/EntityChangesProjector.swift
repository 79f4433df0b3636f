public import GRDB
public import TributaryCore

/// Trilium's `entity_changes` table: one row per entity, its latest change, with the log id as
/// `id` — the database reads like a Trilium document's sync bookkeeping.
public struct EntityChangesProjector: Projector {
    public let name = "entity_changes"
    public let schemaVersion = 1

    public init() {}

    public var tables: [ViewTable] { [ViewTable("entity_changes", key: ["id"])] }

    public func createTables(_ db: Database) throws {
        try db.execute(
            sql: """
                CREATE TABLE entity_changes (
                    id INTEGER PRIMARY KEY NOT NULL,
                    entityName TEXT NOT NULL,
                    entityId TEXT NOT NULL,
                    hash TEXT NOT NULL,
                    isErased INT NOT NULL,
                    changeId TEXT NOT NULL,
                    componentId TEXT NOT NULL,
                    instanceId TEXT NOT NULL,
                    isSynced INTEGER NOT NULL,
                    utcDateChanged TEXT NOT NULL)
                """)
    }

    public func createIndexes(_ db: Database) throws {
        try db.execute(
            sql: """
                CREATE UNIQUE INDEX IF NOT EXISTS IDX_entityChanges_entityName_entityId ON entity_changes (entityName, entityId);
                CREATE INDEX IF NOT EXISTS IDX_entity_changes_changeId ON entity_changes (changeId);
                CREATE INDEX IF NOT EXISTS IDX_entity_changes_isSynced_id ON entity_changes (isSynced, id);
                """)
    }

    static let insertSQL = """
        INSERT OR REPLACE INTO entity_changes
        (id, entityName, entityId, hash, isErased, changeId, componentId, instanceId, isSynced, utcDateChanged)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """

    public func apply(_ changes: ArraySlice<LoggedChange>, _ db: Database) throws {
        // The unique (entityName, entityId) index makes REPLACE drop the entity's older row.
        let statement = try RowStatement(db, sql: EntityChangesProjector.insertSQL)
        for logged in changes { try insert(logged, statement) }
    }

    public func load(_ changes: ArraySlice<LoggedChange>, _ db: Database, rows: inout [EntityKey: Int64]) throws {
        let statement = try RowStatement(db, sql: EntityChangesProjector.insertSQL)
        let delete = try RowStatement(db, sql: "DELETE FROM entity_changes WHERE id = ?")
        for logged in changes {
            let id = Int64(bitPattern: logged.id.rawValue)
            if let old = rows.updateValue(id, forKey: logged.change.key) {
                delete.reset()
                delete.bind(1, old)
                try delete.step()
            }
            try insert(logged, statement)
        }
    }

    private func insert(_ logged: LoggedChange, _ statement: RowStatement) throws {
        let c = logged.change
        statement.reset()
        statement.bind(1, Int64(bitPattern: logged.id.rawValue))
        statement.bindText(2, c.entityName.rawValue)
        statement.bindText(3, c.entityId)
        statement.bindText(4, c.hash)
        statement.bind(5, c.isErased ? 1 : 0 as Int64)
        statement.bindText(6, c.changeId)
        statement.bindText(7, c.componentId)
        statement.bindText(8, c.instanceId)
        statement.bind(9, c.isSynced ? 1 : 0 as Int64)
        statement.bindText(10, c.utcDateChanged.description)
        try statement.step()
    }
}
