/// One entity change with Trilium's fields (the columns of its `entity_changes` table, minus the
/// local `id`, which belongs to the log that stores it).
public struct EntityChange: Sendable, Hashable {
    public var entityName: EntityName
    /// Primary-key value of the entity (for `options` the option name; for `note_reordering`
    /// the parent noteId).
    public var entityId: String
    /// Version fingerprint of the entity content, computed by whoever originated the change and
    /// copied verbatim by every receiver.
    public var hash: String
    public var isErased: Bool
    /// Globally unique id of this change event; the de-duplication key.
    public var changeId: String
    /// The UI component that caused the change, or `"NA"`.
    public var componentId: String
    /// The instance this node got the change from (itself for local changes) — the echo stamp.
    public var instanceId: String
    public var isSynced: Bool
    public var utcDateChanged: UTCDateTime

    public init(
        entityName: EntityName, entityId: String, hash: String, isErased: Bool = false,
        changeId: String, componentId: String = "NA", instanceId: String, isSynced: Bool = true,
        utcDateChanged: UTCDateTime
    ) {
        self.entityName = entityName
        self.entityId = entityId
        self.hash = hash
        self.isErased = isErased
        self.changeId = changeId
        self.componentId = componentId
        self.instanceId = instanceId
        self.isSynced = isSynced
        self.utcDateChanged = utcDateChanged
    }

    public var key: EntityKey { EntityKey(entityName, entityId) }
}

/// A change together with the entity row it carries: the unit that is appended, shipped and
/// replayed.
public struct ChangeRecord: Sendable, Hashable {
    public var change: EntityChange
    /// The entity's row; absent for erasures.
    public var entity: EntityRow?
    /// The instanceId the change carried when it arrived here (for local changes, this node's).
    /// `change.instanceId` is re-stamped with the sending peer; this keeps the original for audits.
    public var originInstanceId: String

    public init(change: EntityChange, entity: EntityRow?, originInstanceId: String? = nil) {
        self.change = change
        self.entity = entity
        self.originInstanceId = originInstanceId ?? change.instanceId
    }
}

/// A change at its position in a log.
public struct LoggedChange: Sendable, Hashable {
    public var id: EntityChangeID
    public var record: ChangeRecord

    public init(id: EntityChangeID, record: ChangeRecord) {
        self.id = id
        self.record = record
    }

    public var change: EntityChange { record.change }
    public var entity: EntityRow? { record.entity }
}
