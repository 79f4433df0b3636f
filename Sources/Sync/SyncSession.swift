public import TributaryCore

/// What the I/O shell must do next.
public enum SyncAction: Sendable, Equatable {
    /// `GET /api/setup/status` (unauthenticated, checks the peer speaks our syncVersion).
    case getStatus
    /// `POST /api/login/sync`.
    case login
    /// Push the local changes after this id (one request of at most 1000 / ~1 MB).
    case push(after: EntityChangeID)
    /// `GET /api/sync/changed` after this peer id.
    case pull(after: EntityChangeID)
    /// `POST /api/sync/finished`.
    case finish
    /// `GET /api/sync/check` and compare with the local digests.
    case check
    /// Re-queue these sectors on both sides (`check-entity-changes`, then `queue-sector`).
    case requeue([SectorID])
    /// The cycle converged.
    case done
    /// The cycle failed.
    case fail(SyncFailure)
}

/// A sector of the content-hash check: an entity name and the first character of entityIds.
public struct SectorID: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var entityName: EntityName
    public var sector: String

    public init(_ entityName: EntityName, _ sector: String) {
        self.entityName = entityName
        self.sector = sector
    }

    public static func < (a: Self, b: Self) -> Bool {
        (a.entityName.rawValue, a.sector) < (b.entityName.rawValue, b.sector)
    }
    public var description: String { "\(entityName.rawValue)/\(sector)" }
}

/// Why a cycle stopped. `isPermanent`: retrying cannot help (wrong secret, version mismatch,
/// syncing with itself) — the engine reports it and does not retry until the next interval.
public struct SyncFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var isPermanent: Bool

    public init(_ message: String, isPermanent: Bool) {
        self.message = message
        self.isPermanent = isPermanent
    }

    public var description: String { message }
}

/// What the shell learned from performing an action.
public enum SyncEvent: Sendable, Equatable {
    case status(syncVersion: Int)
    case loggedIn(instanceId: String, maxEntityChangeId: EntityChangeID)
    /// A push request was made (or there was nothing to push); `through` is the new push cursor.
    case pushed(count: Int, through: EntityChangeID)
    /// A pulled page was applied; `through` is the new pull cursor.
    case pulled(count: Int, through: EntityChangeID)
    case finished
    /// The digests compared: the differing sectors, the peer's head, and whether this node has
    /// changes it has not pushed yet.
    case checked(mismatched: [SectorID], peerMaxEntityChangeId: EntityChangeID, hasUnpushed: Bool)
    case requeued
    case failed(SyncFailure)
}

/// Trilium's sync cycle (trilium-protocol.md §3.1) as a pure state machine: status → login →
/// push → pull until empty → push → finished → content-hash check, repeated while the check says
/// "continue", at most `maxRounds` times. It holds the cursors; the shell performs the actions
/// and feeds back events. No I/O, no clock: unit-tested without sockets.
public struct SyncSession: Sendable {
    public enum Phase: Sendable, Equatable {
        case idle, status, login, firstPush, pull, secondPush, finish, check, requeue, done, failed
    }

    public let localInstanceId: String
    public let syncVersion: Int
    public let maxRounds: Int
    public private(set) var phase: Phase = .idle
    public private(set) var lastSyncedPush: EntityChangeID
    public private(set) var lastSyncedPull: EntityChangeID
    public private(set) var peerInstanceId: String?
    public private(set) var round = 0
    public private(set) var pushedCount = 0
    public private(set) var pulledCount = 0
    /// The cycle ended done while the peer or this node still had newer changes: every round's
    /// check found one side moved on meanwhile (a busy node), never a difference.
    public private(set) var endedBehind = false

    public init(
        localInstanceId: String, syncVersion: Int, lastSyncedPush: EntityChangeID, lastSyncedPull: EntityChangeID,
        maxRounds: Int = 8
    ) {
        self.localInstanceId = localInstanceId
        self.syncVersion = syncVersion
        self.lastSyncedPush = lastSyncedPush
        self.lastSyncedPull = lastSyncedPull
        self.maxRounds = maxRounds
    }

    /// The first action of a cycle.
    public mutating func start() -> SyncAction {
        round = 1
        phase = .status
        return .getStatus
    }

    /// The next action after `event`.
    public mutating func received(_ event: SyncEvent) -> SyncAction {
        switch (phase, event) {
        case (_, .failed(let failure)):
            return fail(failure)
        case (.status, .status(let version)):
            guard version == syncVersion else {
                return fail(
                    SyncFailure(
                        "Non-matching sync versions, local is version \(syncVersion), remote is \(version)",
                        isPermanent: true))
            }
            phase = .login
            return .login
        case (.login, .loggedIn(let instanceId, let max)):
            guard instanceId != localInstanceId else {
                return fail(
                    SyncFailure(
                        "sync server has instance ID \(instanceId) which is also local; a node cannot sync with itself",
                        isPermanent: true))
            }
            peerInstanceId = instanceId
            // A peer restored from an older copy: pull again from what it has (Trilium does this).
            if lastSyncedPull > max { lastSyncedPull = max }
            phase = .firstPush
            return .push(after: lastSyncedPush)
        case (.firstPush, .pushed(let count, let through)), (.secondPush, .pushed(let count, let through)):
            pushedCount += count
            lastSyncedPush = max(lastSyncedPush, through)
            if count > 0 { return .push(after: lastSyncedPush) }
            if phase == .firstPush {
                phase = .pull
                return .pull(after: lastSyncedPull)
            }
            phase = .finish
            return .finish
        case (.pull, .pulled(let count, let through)):
            pulledCount += count
            lastSyncedPull = max(lastSyncedPull, through)
            if count > 0 { return .pull(after: lastSyncedPull) }
            phase = .secondPush
            return .push(after: lastSyncedPush)
        case (.finish, .finished):
            phase = .check
            return .check
        case (.check, .checked(let mismatched, let peerMax, let hasUnpushed)):
            // The check only means something when both sides have everything (§3.10).
            if lastSyncedPull < peerMax || hasUnpushed {
                // Writes meanwhile, not a difference: what was exchanged is committed either way,
                // so running out of rounds ends the cycle, behind, instead of failing it.
                guard round < maxRounds else {
                    endedBehind = true
                    phase = .done
                    return .done
                }
                return nextRound()
            }
            if mismatched.isEmpty {
                phase = .done
                return .done
            }
            phase = .requeue
            return .requeue(mismatched.sorted())
        case (.requeue, .requeued):
            return nextRound()
        default:
            return fail(SyncFailure("unexpected \(event) while in \(phase)", isPermanent: false))
        }
    }

    private mutating func nextRound() -> SyncAction {
        guard round < maxRounds else {
            return fail(SyncFailure("not converged after \(maxRounds) rounds; will retry", isPermanent: false))
        }
        round += 1
        phase = .login
        return .login
    }

    private mutating func fail(_ failure: SyncFailure) -> SyncAction {
        phase = .failed
        return .fail(failure)
    }
}
