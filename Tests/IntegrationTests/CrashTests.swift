import EventLog
import Foundation
import Subprocess
import SystemPackage
import Testing
import Tributary
import TributaryCore
import TributaryTesting

/// SIGKILL a real `tributary import` at random points; nothing it acknowledged may be lost, the
/// log must verify, and the next import must continue without duplicates.
@Suite(.timeLimit(.minutes(5))) struct CrashTests {
    /// Runs an import that prints an `ack FIRST LAST LINE` after each durable batch, kills it with
    /// SIGKILL after `killAfter`, and returns the last acknowledged input line.
    func importAndKill(data: String, input: String, killAfter: Duration) async throws -> (
        lastAckedLine: Int, finished: Bool
    ) {
        let result = try await Subprocess.run(
            .path(FilePath(TributaryBinary.path)),
            arguments: ["import", "--data", data, "--batch-size", "50", "--print-acks", input],
            input: .none, output: .sequence, error: .discarded
        ) { execution in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await Task.sleep(for: killAfter)
                    try? execution.send(signal: .kill)
                }
                var last = 0
                for try await line in execution.standardOutput.strings() {
                    let fields = line.split(separator: " ")
                    if fields.first == "ack", let n = Int(fields[3]) { last = n }
                }
                group.cancelAll()
                return last
            }
        }
        let finished = result.terminationStatus == .exited(0)
        return (result.closureResult, finished)
    }

    @Test func killedImportsLoseNothingTheyAcknowledged() async throws {
        try await withTemporaryDirectory { dir in
            let records = SampleEvents(seed: 11).records(4000)
            let input = try writeJSONLines(records, to: dir + "/in.jsonl")
            let data = dir + "/data"
            var rng = SplitMix64(seed: 2026)
            var kills = 0
            var maxAcked = 0
            for round in 0..<24 {
                let delay = Duration.milliseconds(40 + Int(rng.next() % 700))
                let outcome = try await importAndKill(data: data, input: input, killAfter: delay)
                if !outcome.finished { kills += 1 }
                maxAcked = max(maxAcked, outcome.lastAckedLine)
                // Everything acknowledged in any round so far is there, and the log verifies.
                try withReadOnlyStore(data) { store throws in
                    for line in stride(from: 1, through: maxAcked, by: 7) {
                        let changeId = records[line - 1].change.changeId
                        #expect(
                            try store.log.entityChangeID(forChangeId: changeId) != nil,
                            "round \(round): line \(line) lost")
                    }
                    let report = try store.log.verify()
                    #expect(report.isSound, "round \(round): \(report.problems)")
                    #expect(store.log.head.rawValue <= UInt64(records.count))
                }
            }
            #expect(kills >= 20, "only \(kills) imports were killed mid-way")

            // The next import completes and adds exactly what was missing.
            let final = try await runTributary(["import", "--data", data, input])
            #expect(final.exitCode == 0, "\(final.standardError)")
            try withReadOnlyStore(data) { store throws in
                #expect(store.log.head == EntityChangeID(UInt64(records.count)))
                #expect(try store.log.verify().isSound)
                for record in records {
                    #expect(try store.log.entityChangeID(forChangeId: record.change.changeId) != nil)
                }
            }
            let again = try await runTributary(["import", "--data", data, input])
            #expect(again.standardOutput.contains("applied 0, duplicates skipped 4000"))
        }
    }
}

@Suite(.timeLimit(.minutes(2))) struct CorruptionTests {
    @Test func aFlippedByteIsReportedByVerifyAndReplayWithItsId() async throws {
        try await withTemporaryDirectory { dir in
            let data = dir + "/data"
            var records = SampleEvents(seed: 12).records(600)
            // Record 321 carries a marker found nowhere else in the file.
            let marker = "CORRUPTION-MARKER-7f3a9c"
            var row = try records[320].entity!.object()
            let key = records[320].change.entityName.primaryKey!
            row = [key: row[key]!, "title": .string(marker)]
            records[320].entity = EntityRow(row)
            do {
                let store = try Store(dataDirectory: data, logger: logger)
                _ = try await store.applier.applyRemote(records, from: .recordInstance)
                try await store.log.flushIndex()
                store.close()
            }
            let file = URL(fileURLWithPath: data + "/log/data.mdb")
            var bytes = try Data(contentsOf: file)
            let ranges = bytes.ranges(of: Data(marker.utf8))
            #expect(ranges.count == 1)
            let at = try #require(ranges.first).lowerBound + 5
            bytes[at] ^= 0x20
            try bytes.write(to: file)

            let verify = try await runTributary(["verify", "--data", data])
            #expect(verify.exitCode == 1)
            #expect(
                verify.standardOutput.contains("id 321: record 321 is corrupt: checksum mismatch"),
                "\(verify.standardOutput)")
            #expect(verify.standardOutput.hasPrefix("FAILED: 1 problem(s)"))

            let replay = try await runTributary(["replay", "--data", data])
            #expect(replay.exitCode == 1)
            #expect(replay.standardError.contains("record 321 is corrupt"))
            #expect(replay.standardOutput.split(separator: "\n").count == 320)

            let after = try await runTributary(["replay", "--data", data, "--from", "322"])
            #expect(after.exitCode == 0)
            #expect(after.standardOutput.split(separator: "\n").count == 279)
        }
    }
}

@Suite(.timeLimit(.minutes(2))) struct DirectoryLockTests {
    @Test func aDirectoryOpenForWritingElsewhereIsRefusedWhileReadersWork() async throws {
        try await withTemporaryDirectory { dir in
            let data = dir + "/data"
            let records = SampleEvents(seed: 13).records(300)
            _ = try await runTributary(["import", "--data", data, try writeJSONLines(records, to: dir + "/in.jsonl")])
            // A writer that holds the directory while it waits for input on stdin.
            _ = try await Subprocess.run(
                .path(FilePath(TributaryBinary.path)), arguments: ["import", "--data", data, "-"],
                input: .inputWriter, output: .discarded, error: .discarded
            ) { execution in
                // Give the child time to open the directory.
                var opened = false
                for _ in 0..<100 {
                    try await Task.sleep(for: .milliseconds(50))
                    do {
                        let store = try Store(dataDirectory: data, logger: logger)
                        store.close()
                    } catch let error as EventLogError where error.code == .directoryInUse {
                        opened = true
                        break
                    }
                }
                #expect(opened, "the child never took the writer lock")
                let second = try await runTributary(["import", "--data", data, dir + "/in.jsonl"])
                #expect(second.exitCode == 1)
                #expect(second.standardError.contains("open for writing by another process"))
                // Readers are not blocked by the writer.
                let replay = try await runTributary(["replay", "--data", data])
                #expect(replay.exitCode == 0)
                #expect(replay.standardOutput.split(separator: "\n").count == 300)
                let status = try await runTributary(["status", "--data", data])
                #expect(status.exitCode == 0)
                _ = try await execution.standardInputWriter.write(
                    Array(SampleEvents(seed: 14).records(3)[0].wireJSON() + [0x0A]))
                try await execution.standardInputWriter.finish()
            }
            try withReadOnlyStore(data) { store throws in #expect(store.log.head == 301) }
        }
    }
}
