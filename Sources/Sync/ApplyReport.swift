import Metrics
public import TributaryCore

/// What the apply path did with a batch.
public struct ApplyReport: Sendable, Hashable {
    public enum Outcome: Sendable, Hashable {
        /// Appended at this id.
        case applied(EntityChangeID)
        /// Its changeId is already in the log; skipped.
        case duplicate
        /// A newer local version won. `reissued` is the id of the local version re-issued for
        /// the other nodes when the two differ (nil when they were the same).
        case lostConflict(reissued: EntityChangeID?)
        /// Nothing to do (an `options` record without a row, or an erasure of an unknown entity).
        case ignored
    }

    public var outcomes: [Outcome] = []
    /// The ids appended (applied changes and re-issues); nil when nothing was appended.
    public var range: ClosedRange<EntityChangeID>?

    public init() {}

    public var applied: Int { outcomes.count { if case .applied = $0 { true } else { false } } }
    public var duplicates: Int { outcomes.count { $0 == .duplicate } }
    public var conflictsLost: Int { outcomes.count { if case .lostConflict = $0 { true } else { false } } }
    public var reissued: Int { outcomes.count { if case .lostConflict(_?) = $0 { true } else { false } } }
    public var ignored: Int { outcomes.count { $0 == .ignored } }

    public mutating func add(_ other: ApplyReport) {
        outcomes.append(contentsOf: other.outcomes)
        if let r = other.range {
            range = range.map { min($0.lowerBound, r.lowerBound)...max($0.upperBound, r.upperBound) } ?? r
        }
    }
}

/// Who sent a batch of remote changes: the basis of the echo-avoidance stamp.
public enum Sender: Sendable, Hashable {
    /// A peer node (its instanceId): received changes are stamped with it.
    case peer(instanceId: String)
    /// Each record's own instanceId counts as its sender (`tributary import`).
    case recordInstance
}

extension ApplyReport {
    /// Counts the outcomes in `tributary_apply_changes_total{origin,outcome}`.
    func record(origin: String) {
        for (outcome, count) in [
            ("applied", applied), ("duplicate", duplicates), ("lost_conflict", conflictsLost), ("ignored", ignored),
        ]
        where count > 0 {
            Counter(label: "tributary_apply_changes_total", dimensions: [("origin", origin), ("outcome", outcome)])
                .increment(by: count)
        }
    }
}
