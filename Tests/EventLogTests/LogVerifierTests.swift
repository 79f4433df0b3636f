import Foundation
import Testing
import Tributary
import TributaryCore
import TributaryTesting

@testable import EventLog

/// `verify` finds each way the on-disk indexes can disagree with the log. Each test damages one
/// thing in a closed, fully indexed log of 50 changes (ids 1-50, each entity once), then verifies
/// it opened read-only, as `tributary verify` does.
@Suite struct LogVerifierTests {
    let records = SampleEvents(seed: 21).records(50)

    /// The key and `current` entry of the change at `id`.
    func entry(at id: UInt64) -> (key: EntityKey, entry: CurrentEntry) {
        let change = records[Int(id) - 1].change
        return (change.key, CurrentEntry(id: EntityChangeID(id), change))
    }

    /// Writes the log, damages it with `damage` in one write transaction on its LMDB environment
    /// (the log closed), and returns what verify reports.
    func verifyDamaged(
        _ damage: (borrowing WriteTransaction, LogDatabases) throws -> Void
    ) async throws -> VerifyReport {
        try await withTemporaryDirectory { dir in
            do {
                let log = try openLog(dir)
                _ = try await log.append(records)
                try await log.flushIndex()
                #expect(try log.verify().isSound)
                log.close()
            }
            do {
                let env = try Environment(
                    path: dir + "/log", options: .init(mapSize: 1 << 30),
                    databases: ["changes", "current", "changeIds", "meta"])
                defer { env.close() }
                let txn = try WriteTransaction(env)
                try damage(txn, LogDatabases(env))
                try txn.commit()
            }
            let log = try openLog(dir) { $0.readOnly = true }
            defer { log.close() }
            return try log.verify()
        }
    }

    @Test func aChangeIdsEntryPointingAtAnotherIdIsReported() async throws {
        let changeId = records[9].change.changeId
        let report = try await verifyDamaged { txn, db in
            try put(txn, db.changeIds, Array(changeId.utf8), IndexCoding.idKey(30))
        }
        #expect(report.problems.map(\.message) == ["changeIds maps \(changeId) to 30, the log has it at 10"])
        #expect(report.problems.map(\.kind) == [.changeIdIndex])
        #expect(report.problems.map(\.id) == [10])
    }

    @Test func aMissingChangeIdsEntryIsReported() async throws {
        let changeId = records[9].change.changeId
        let report = try await verifyDamaged { txn, db in
            try Array(changeId.utf8).withUnsafeBytes { try txn.delete(db.changeIds, $0) }
        }
        #expect(
            report.problems.map(\.message) == [
                "changeIds maps \(changeId) to nothing, the log has it at 10",
                "changeIds has 49 entries; the log has 50 changes up to the index checkpoint 50",
            ])
        #expect(report.problems.map(\.id) == [10, nil])
    }

    @Test func aChangeIdsEntryNoRecordHasIsReported() async throws {
        let report = try await verifyDamaged { txn, db in
            try put(txn, db.changeIds, Array("strayChange1".utf8), IndexCoding.idKey(5))
        }
        #expect(
            report.problems.map(\.message) == [
                "changeIds has 51 entries; the log has 50 changes up to the index checkpoint 50"
            ])
        #expect(report.problems.map(\.kind) == [.changeIdIndex])
    }

    @Test func aCurrentEntryPointingAtAnotherEntitysRecordIsReported() async throws {
        let (key, _) = entry(at: 10)
        let report = try await verifyDamaged { txn, db in
            try put(txn, db.current, IndexCoding.currentKey(key), IndexCoding.currentValue(entry(at: 30).entry))
        }
        #expect(report.problems.map(\.message) == ["current for \(key) points at 30; the log's latest is 10"])
        #expect(report.problems.map(\.kind) == [.currentIndex])
        #expect(report.problems.map(\.id) == [10])
    }

    @Test func aCurrentEntryThatDiffersFromItsRecordIsReported() async throws {
        let (key, original) = entry(at: 10)
        var wrong = original
        wrong.hash = "hashBOGUS1"
        let report = try await verifyDamaged { txn, db in
            try put(txn, db.current, IndexCoding.currentKey(key), IndexCoding.currentValue(wrong))
        }
        #expect(report.problems.map(\.message) == ["current for \(key) differs from record 10"])
        #expect(report.problems.map(\.id) == [10])
    }

    @Test func aMissingCurrentEntryIsReported() async throws {
        let (key, _) = entry(at: 10)
        let report = try await verifyDamaged { txn, db in
            try IndexCoding.currentKey(key).withUnsafeBytes { try txn.delete(db.current, $0) }
        }
        #expect(report.problems.map(\.message) == ["current has no entry for \(key)"])
        #expect(report.problems.map(\.id) == [10])
    }

    @Test func aCurrentEntryNoRecordHasIsReported() async throws {
        let stray = EntityKey(.notes, "strayNote001")
        let report = try await verifyDamaged { txn, db in
            try put(txn, db.current, IndexCoding.currentKey(stray), IndexCoding.currentValue(entry(at: 5).entry))
            // A key whose first byte is no entity name's code.
            try put(txn, db.current, [0xEE, 0x61, 0x62], IndexCoding.currentValue(entry(at: 6).entry))
        }
        #expect(
            Set(report.problems.map(\.message)) == [
                "current has \(stray), which no record in the log has",
                "current has a key of 3 bytes that names no entity",
            ])
        #expect(report.problemCount == 2)
    }

    @Test func missingRecordsAreReportedAsIdGaps() async throws {
        let report = try await verifyDamaged { txn, db in
            for id: EntityChangeID in [1, 25] {
                try IndexCoding.idKey(id).withUnsafeBytes { try txn.delete(db.changes, $0) }
            }
        }
        let gaps = report.problems.filter { $0.kind == .idGap }
        #expect(gaps.map(\.message) == ["the log starts at 2, not 1", "ids jump from 24 to 26"])
        #expect(gaps.map(\.id) == [2, 26])
        #expect(report.checkedRecords == 48)
    }

    @Test func aKeyThatIsNoIdIsReported() async throws {
        let report = try await verifyDamaged { txn, db in
            // Nine bytes: sorts between ids 1 and 2.
            try put(txn, db.changes, IndexCoding.idKey(1) + [0], [1, 2, 3])
        }
        #expect(report.problems.map(\.message) == ["a key of 9 bytes in the changes table"])
        #expect(report.problems.map(\.kind) == [.badKey])
    }

    @Test func anIndexCheckpointPastTheHeadIsReported() async throws {
        let report = try await verifyDamaged { txn, db in
            try put(txn, db.meta, Array(MetaKey.indexCheckpoint.utf8), IndexCoding.idKey(60))
        }
        #expect(report.problems.map(\.message) == ["the index checkpoint 60 is past the log head 50"])
        #expect(report.problems.map(\.kind) == [.metadata])
    }
}

/// The databases of a log's environment.
struct LogDatabases {
    let changes: Database
    let current: Database
    let changeIds: Database
    let meta: Database

    init(_ env: Environment) {
        changes = env.database("changes")
        current = env.database("current")
        changeIds = env.database("changeIds")
        meta = env.database("meta")
    }
}

private func put(_ txn: borrowing WriteTransaction, _ db: Database, _ key: [UInt8], _ value: [UInt8]) throws {
    try key.withUnsafeBytes { k in try value.withUnsafeBytes { v in try txn.put(db, k, v) } }
}
