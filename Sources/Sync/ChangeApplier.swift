public import EventLog
import Metrics
public import TributaryCore

/// The apply path — the only way anything is written to the log.
///
/// validate → dedupe by changeId → Trilium's last-writer-wins rule against `current` → append,
/// all inside one group commit, so two batches racing for the same entity are decided in order.
/// A batch is all-or-nothing: any invalid record refuses the whole batch and writes nothing.
public struct ChangeApplier: Sendable {
    public let log: EntityChangeLog
    public let limits: ChangeLimits
    /// The clock for local writes' `utcDateChanged` (injected by tests).
    let now: @Sendable () -> UTCDateTime

    public init(
        log: EntityChangeLog, limits: ChangeLimits = .default,
        now: @escaping @Sendable () -> UTCDateTime = { UTCDateTime.now() }
    ) {
        self.log = log
        self.limits = limits
        self.now = now
    }

    /// Applies changes received from elsewhere.
    ///
    /// - Parameters:
    ///   - checkpoint: a (name, value) stored in the same transaction (a sync cursor), so a crash
    ///     never separates the changes from the cursor that covers them.
    /// - Throws: `ApplyError` for bad input (nothing written); `EventLogError` from storage.
    public func applyRemote(
        _ records: [ChangeRecord], from sender: Sender, checkpoint: (name: String, value: [UInt8])? = nil
    ) async throws -> ApplyReport {
        let limits = self.limits
        _ = try await Self.checkedMap(records) { record throws(CoreError) in try record.validate(limits) }
        let committed = try await log.write { writer in
            var outcomes: [ApplyReport.Outcome] = []
            outcomes.reserveCapacity(records.count)
            for record in records {
                outcomes.append(try ChangeApplier.applyRemote(record, sender: sender, writer: &writer))
            }
            if let checkpoint { writer.setCheckpoint(checkpoint.name, checkpoint.value) }
            return outcomes
        }
        var report = ApplyReport()
        report.outcomes = committed.value
        report.range = committed.range
        report.record(origin: "remote")
        return report
    }

    /// `transform` applied to each item in order — in two halves at once for a large batch, since
    /// checking the batch is the caller's whole share of a write and its items are independent.
    /// The error is the one at the lowest index, as a sequential pass would give.
    static func checkedMap<T: Sendable, R: Sendable>(
        _ items: [T], _ transform: @escaping @Sendable (T) throws(CoreError) -> R
    ) async throws(ApplyError) -> [R] {
        @Sendable func run(_ range: Range<Int>) -> Result<[R], ApplyError> {
            var out: [R] = []
            out.reserveCapacity(range.count)
            for i in range {
                do throws(CoreError) {
                    out.append(try transform(items[i]))
                } catch {
                    return .failure(ApplyError(index: i, cause: error))
                }
            }
            return .success(out)
        }
        guard items.count >= 512 else { return try run(0..<items.count).get() }
        let middle = items.count / 2
        async let first = run(0..<middle)
        let second = run(middle..<items.count)
        return try await first.get() + second.get()
    }

    /// Trilium's rule for one incoming change (trilium-protocol.md §4.1-4.3), with Tributary's
    /// re-issue fix: a re-issued local version always takes this node's instanceId.
    static func applyRemote(_ incoming: ChangeRecord, sender: Sender, writer: inout LogWriter) throws
        -> ApplyReport.Outcome
    {
        let remote = incoming.change
        if try writer.contains(changeId: remote.changeId) { return .duplicate }
        if remote.entityName == .options && incoming.entity == nil && !remote.isErased { return .ignored }
        var stamped = incoming
        // The sender's stamp keeps the change from being sent back to it; the origin stays for audits.
        stamped.originInstanceId = incoming.change.instanceId
        if case .peer(let instanceId) = sender { stamped.change.instanceId = instanceId }
        if remote.entityName == .noteReordering {
            return .applied(writer.append(stamped))
        }
        guard let local = try writer.current(remote.key), local.utcDateChanged > remote.utcDateChanged else {
            // No local version, or the remote one is as new or newer: ties go to the remote side.
            return .applied(writer.append(stamped))
        }
        guard local.hash != remote.hash || local.isErased != remote.isErased else {
            return .lostConflict(reissued: nil)
        }
        // The local version is newer and differs: re-issue it so every node, including the
        // sender, gets it — with a fresh changeId and this node's instanceId (PR #11000).
        guard var reissue = try writer.record(at: local.id) else {
            throw EventLogError(
                .corruptRecord, "current entry of \(remote.key) points at missing record \(local.id)", id: local.id)
        }
        reissue.change.changeId = RandomID.make()
        reissue.change.instanceId = writer.instanceId
        reissue.originInstanceId = writer.instanceId
        return .lostConflict(reissued: writer.append(reissue))
    }

    /// Applies writes made on this node: fills in hash, changeId, instanceId and
    /// utcDateChanged, then appends.
    ///
    /// A local write's timestamp is the later of now and one millisecond after the entity's
    /// current change, so the write made last here is also the one last-writer-wins picks on
    /// every node, even when a peer's clock runs ahead.
    /// - Throws: `ApplyError` for bad input (nothing written); `EventLogError` from storage.
    public func applyLocal(_ writes: [LocalWrite]) async throws -> ApplyReport {
        let changeIds = RandomID.make(count: writes.count)
        let records = try await Self.checkedMap(Array(zip(writes, changeIds))) { [self] item throws(CoreError) in
            try prepare(item.0, changeId: item.1)
        }
        let now = self.now
        let committed = try await log.write { writer in
            var outcomes: [ApplyReport.Outcome] = []
            outcomes.reserveCapacity(records.count)
            for var record in records {
                let current = try writer.current(record.change.key)
                var date = now()
                if let current, current.utcDateChanged >= date { date = current.utcDateChanged.successor }
                record.change.utcDateChanged = date
                if record.change.isErased {
                    // Trilium keeps the old hash on erasure; an entity never seen has nothing to erase.
                    guard let current, !current.isErased else {
                        outcomes.append(.ignored)
                        continue
                    }
                    record.change.hash = current.hash
                }
                outcomes.append(.applied(writer.append(record)))
            }
            return outcomes
        }
        var report = ApplyReport()
        report.outcomes = committed.value
        report.range = committed.range
        report.record(origin: "local")
        return report
    }

    /// Checks a local write and makes its record outside the commit — row, content hash, changeId
    /// — validated whole. The commit fills in what depends on the entity's current change: the
    /// timestamp, and an erasure's hash (a stored one, valid already).
    private func prepare(_ write: LocalWrite, changeId: String) throws(CoreError) -> ChangeRecord {
        guard limits.isValidEntityId(write.entityId) else {
            throw CoreError(
                .invalidValue, "entityId must be 1-\(limits.maxEntityIdLength) characters of A-Z a-z 0-9 _ . : -",
                field: "entityId")
        }
        var row = write.entity
        var hash = "erased"
        if var given = row {
            // Member names are matched as bytes below; rewritten once, none has an escape that
            // JSON.parse, and so Trilium, would read as a column name.
            if given.bytes.contains(UInt8(ascii: "\\")) { given = EntityRow(try given.object()) }
            if let primaryKey = write.entityName.primaryKey {
                switch given.value(forKey: primaryKey) {
                case nil: given = given.adding(primaryKey, .string(write.entityId))
                case .string(let id)? where id == write.entityId: break
                case .string?:
                    throw CoreError(
                        .invalidValue, "does not match entityId '\(write.entityId)'", field: "entity.\(primaryKey)")
                case let other?:
                    throw CoreError(
                        .wrongType, "expected a string, found \(other.typeName)", field: "entity.\(primaryKey)")
                }
            }
            hash = try ContentHash.entityHash(write.entityName, row: given)
            row = given
        } else if write.entityName == .noteReordering {
            throw CoreError(.invalidValue, "note_reordering cannot be erased", field: "isErased")
        }
        let change = EntityChange(
            entityName: write.entityName, entityId: write.entityId, hash: hash, isErased: row == nil,
            changeId: changeId, componentId: write.componentId, instanceId: log.instanceId,
            isSynced: write.entityName != .options || row.map(isSyncedOption) ?? true, utcDateChanged: now())
        let record = ChangeRecord(change: change, entity: row, originInstanceId: log.instanceId)
        try record.validate(limits)
        return record
    }

}

/// Trilium records options with their own `isSynced` column (§1.4).
private func isSyncedOption(_ row: EntityRow) -> Bool {
    row.value(forKey: "isSynced")?.isTruthy ?? false
}
