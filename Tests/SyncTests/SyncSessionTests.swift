import Sync
import Testing
import TributaryCore

/// The sync cycle as a pure state machine: no sockets, every branch of Trilium's §3.1/§3.10.
@Suite struct SyncSessionTests {
    func session(push: UInt64 = 0, pull: UInt64 = 0) -> SyncSession {
        SyncSession(
            localInstanceId: "localInst001", syncVersion: 36, lastSyncedPush: EntityChangeID(push),
            lastSyncedPull: EntityChangeID(pull), maxRounds: 3)
    }

    @Test func aCleanCycleRunsStatusLoginPushPullPushFinishCheck() {
        var s = session()
        #expect(s.start() == .getStatus)
        #expect(s.received(.status(syncVersion: 36)) == .login)
        #expect(s.received(.loggedIn(instanceId: "peerInst0001", maxEntityChangeId: 50)) == .push(after: 0))
        #expect(s.received(.pushed(count: 10, through: 12)) == .push(after: 12))
        #expect(s.received(.pushed(count: 0, through: 12)) == .pull(after: 0))
        #expect(s.received(.pulled(count: 30, through: 40)) == .pull(after: 40))
        #expect(s.received(.pulled(count: 0, through: 50)) == .push(after: 12))
        #expect(s.received(.pushed(count: 0, through: 42)) == .finish)
        #expect(s.received(.finished) == .check)
        #expect(s.received(.checked(mismatched: [], peerMaxEntityChangeId: 50, hasUnpushed: false)) == .done)
        #expect(s.lastSyncedPush == 42)
        #expect(s.lastSyncedPull == 50)
        #expect(s.pushedCount == 10)
        #expect(s.pulledCount == 30)
        #expect(s.peerInstanceId == "peerInst0001")
    }

    @Test func aVersionMismatchOrSyncingWithItselfIsPermanent() {
        var a = session()
        _ = a.start()
        #expect(
            a.received(.status(syncVersion: 35))
                == .fail(
                    SyncFailure("Non-matching sync versions, local is version 36, remote is 35", isPermanent: true)))
        var b = session()
        _ = b.start()
        _ = b.received(.status(syncVersion: 36))
        guard case .fail(let failure) = b.received(.loggedIn(instanceId: "localInst001", maxEntityChangeId: 0)) else {
            Issue.record("expected a failure")
            return
        }
        #expect(failure.isPermanent)
        #expect(failure.message.contains("which is also local"))
    }

    @Test func aPeerRestoredFromAnOlderCopyIsPulledFromItsHead() {
        var s = session(push: 5, pull: 900)
        _ = s.start()
        _ = s.received(.status(syncVersion: 36))
        _ = s.received(.loggedIn(instanceId: "peerInst0001", maxEntityChangeId: 300))
        #expect(s.lastSyncedPull == 300)
    }

    @Test func theCheckContinuesWhileEitherSideHasMoreAndRequeuesDifferences() {
        var s = session()
        _ = s.start()
        _ = s.received(.status(syncVersion: 36))
        _ = s.received(.loggedIn(instanceId: "peerInst0001", maxEntityChangeId: 10))
        _ = s.received(.pushed(count: 0, through: 0))
        _ = s.received(.pulled(count: 0, through: 10))
        _ = s.received(.pushed(count: 0, through: 0))
        _ = s.received(.finished)
        // The peer got more meanwhile: another round, starting with a login.
        #expect(s.received(.checked(mismatched: [], peerMaxEntityChangeId: 11, hasUnpushed: false)) == .login)
        #expect(s.round == 2)
        _ = s.received(.loggedIn(instanceId: "peerInst0001", maxEntityChangeId: 11))
        _ = s.received(.pushed(count: 0, through: 0))
        _ = s.received(.pulled(count: 0, through: 11))
        _ = s.received(.pushed(count: 0, through: 0))
        _ = s.received(.finished)
        let sectors = [SectorID(.notes, "b"), SectorID(.blobs, "A")]
        #expect(
            s.received(.checked(mismatched: sectors, peerMaxEntityChangeId: 11, hasUnpushed: false))
                == .requeue(sectors.sorted()))
        #expect(s.received(.requeued) == .login)
        #expect(s.round == 3)
        _ = s.received(.loggedIn(instanceId: "peerInst0001", maxEntityChangeId: 11))
        _ = s.received(.pushed(count: 0, through: 0))
        _ = s.received(.pulled(count: 0, through: 11))
        _ = s.received(.pushed(count: 0, through: 0))
        _ = s.received(.finished)
        // Rounds are bounded: a divergence that never heals fails (and is retried later).
        #expect(
            s.received(.checked(mismatched: sectors, peerMaxEntityChangeId: 11, hasUnpushed: false))
                == .requeue(sectors.sorted()))
        #expect(
            s.received(.requeued) == .fail(SyncFailure("not converged after 3 rounds; will retry", isPermanent: false)))
    }

    @Test func aPeerStillWritingAfterTheLastRoundEndsTheCycleBehindNotFailed() {
        // On a busy hub every check finds it moved on; that is no divergence, and what was
        // exchanged is committed, so the cycle succeeds once its rounds are used.
        var s = session()
        _ = s.start()
        _ = s.received(.status(syncVersion: 36))
        for round in 1...3 {
            let max = EntityChangeID(UInt64(10 * round))
            _ = s.received(.loggedIn(instanceId: "peerInst0001", maxEntityChangeId: max))
            _ = s.received(.pushed(count: 0, through: 0))
            _ = s.received(.pulled(count: 0, through: max))
            _ = s.received(.pushed(count: 0, through: 0))
            _ = s.received(.finished)
            let next = s.received(.checked(mismatched: [], peerMaxEntityChangeId: max.next, hasUnpushed: false))
            #expect(next == (round < 3 ? .login : .done))
        }
        #expect(s.phase == .done)
        #expect(s.endedBehind)
    }

    @Test func anErrorFromTheShellFailsTheCycleAndAnUnexpectedEventToo() {
        var s = session()
        _ = s.start()
        #expect(
            s.received(.failed(SyncFailure("connection refused", isPermanent: false)))
                == .fail(SyncFailure("connection refused", isPermanent: false)))
        var t = session()
        _ = t.start()
        guard case .fail(let failure) = t.received(.finished) else {
            Issue.record("expected a failure")
            return
        }
        #expect(!failure.isPermanent)
    }
}
