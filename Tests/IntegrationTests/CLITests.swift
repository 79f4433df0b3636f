import EventLog
import Foundation
import GRDB
import Testing
import Tributary
import TributaryCore
import TributaryTesting

@Suite(.timeLimit(.minutes(3))) struct CLITests {
    @Test func importThenReplayGivesEveryRecordBackInOrder() async throws {
        try await withTemporaryDirectory { dir in
            let records = SampleEvents(seed: 3).records(2500)
            let input = try writeJSONLines(records, to: dir + "/in.jsonl")
            let imported = try await runTributary(["import", "--data", dir + "/data", input])
            #expect(imported.exitCode == 0, "\(imported.standardError)")
            #expect(imported.standardOutput.contains("applied 2500, duplicates skipped 0, conflicts lost 0"))

            let replay = try await runTributary(["replay", "--data", dir + "/data"])
            #expect(replay.exitCode == 0, "\(replay.standardError)")
            let lines = replay.standardOutput.split(separator: "\n")
            #expect(lines.count == 2500)
            for (i, line) in lines.enumerated() {
                let object = try JSONParser.parseObject(Array(line.utf8))
                #expect(object["id"] == .number(i + 1))
                let back = try ChangeRecord(wireJSON: Array(line.utf8))
                #expect(back.change == records[i].change)
                #expect(back.entity?.bytes == records[i].entity?.bytes)
                #expect(
                    object["entityChange"]?.objectValue?["originInstanceId"] == .string(records[i].change.instanceId))
            }

            let again = try await runTributary(["import", "--data", dir + "/data", input])
            #expect(again.standardOutput.contains("applied 0, duplicates skipped 2500"))

            let window = try await runTributary(["replay", "--data", dir + "/data", "--from", "10", "--to", "19"])
            #expect(window.standardOutput.split(separator: "\n").count == 10)
            #expect(window.standardOutput.hasPrefix("{\"id\":10,"))
            let notes = try await runTributary(["replay", "--data", dir + "/data", "--entity", "blobs", "--limit", "3"])
            let noteLines = notes.standardOutput.split(separator: "\n")
            #expect(noteLines.count == 3)
            #expect(noteLines.allSatisfy { $0.contains("\"entityName\":\"blobs\"") })
            let unknown = try await runTributary(["replay", "--data", dir + "/data", "--entity", "widgets"])
            #expect(unknown.exitCode == 1)
            #expect(unknown.standardError.contains("unknown entityName 'widgets'"))
        }
    }

    /// On a terminal the import draws a progress line (bar, percentage, rate, records) and clears
    /// it before the summary; into a pipe it draws nothing, so logs and scripts stay clean.
    @Test func importShowsProgressOnATerminalOnly() async throws {
        try await withTemporaryDirectory { dir in
            let input = try writeJSONLines(SampleEvents(seed: 4).records(3000), to: dir + "/in.jsonl")
            let piped = try await runTributary(["import", "--data", dir + "/piped", input])
            #expect(piped.exitCode == 0, "\(piped.standardError)")
            #expect(!piped.standardError.contains("\u{1B}[K") && !piped.standardError.contains("%"))

            let shown = try await runTributaryOnATerminal(["import", "--data", dir + "/terminal", input])
            #expect(shown.exitCode == 0, "\(shown.standardOutput)")
            let drawn = shown.standardOutput
            #expect(drawn.contains("\r\u{1B}[K["), "\(drawn.debugDescription)")
            #expect(drawn.contains("%") && drawn.contains("MB/s") && drawn.contains("records"))
            #expect(drawn.contains("applied 3000, duplicates skipped 0, conflicts lost 0"))
            // The summary starts on a cleared line, not after a half-drawn bar.
            let summary = try #require(drawn.range(of: "imported 3000 records"))
            #expect(drawn[..<summary.lowerBound].hasSuffix("\r\u{1B}[K"), "\(drawn.suffix(300).debugDescription)")
        }
    }

    /// Every workload runs end to end and prints its line; W3's subscribers see every event once,
    /// in order, with a latency stamp each (the figures themselves belong to release builds).
    @Test func benchPrintsOneLinePerFigure() async throws {
        try await withTemporaryDirectory { dir in
            let result = try await runTributary([
                "bench", "--events", "3000", "--durability", "none", "--scratch", dir, "--tail-cases", "1000x3",
                "--tail-seconds", "2",
            ])
            #expect(result.exitCode == 0, "\(result.standardError)")
            let lines = result.standardOutput.split(separator: "\n").map { line in
                Dictionary(
                    line.split(separator: " ").map { $0.split(separator: "=", maxSplits: 1).map(String.init) }
                        .map { ($0[0], $0.count > 1 ? $0[1] : "") }, uniquingKeysWith: { $1 })
            }
            let workloads = Set(lines.compactMap { $0["workload"] })
            #expect(workloads == ["W1-append", "W2-scan", "W3-tail", "W4-catchup", "W5-rebuild"])
            let tail = try #require(lines.first { $0["workload"] == "W3-tail" })
            #expect(tail["events"] == "2000")
            #expect(tail["complete_subs"] == "3")
            // Three subscribers, one second of warm-up excluded: about 3 × 1000 stamped samples.
            let samples = try #require(tail["samples"].flatMap { Int($0) })
            #expect(samples > 2000 && samples <= 3 * 2000, "\(samples) samples")
            #expect(tail["p50_ms"].flatMap(Double.init).map { $0 > 0 } == true)
            let bad = try await runTributary(["bench", "--tail-cases", "10k-by-50"])
            #expect(bad.exitCode != 0)
            #expect(bad.standardError.contains("RATExSUBSCRIBERS"))
        }
    }

    @Test func statusAndVerifyDescribeTheLog() async throws {
        try await withTemporaryDirectory { dir in
            let records = SampleEvents(seed: 4).records(1200)
            let input = try writeJSONLines(records, to: dir + "/in.jsonl")
            _ = try await runTributary(["import", "--data", dir + "/data", input])
            let status = try await runTributary(["status", "--data", dir + "/data", "--json"])
            #expect(status.exitCode == 0)
            let object = try JSONParser.parseObject(Array(status.standardOutput.utf8))
            #expect(object["head"] == .number(1200))
            #expect(object["changes"] == .number(1200))
            let notes = records.filter { $0.change.entityName == .notes }
            let live = notes.filter { !$0.change.isErased }.count
            #expect(object["entities"]?.objectValue?["notes"]?.objectValue?["live"] == .number(live))
            #expect(object["entities"]?.objectValue?["notes"]?.objectValue?["erased"] == .number(notes.count - live))
            let verify = try await runTributary(["verify", "--data", dir + "/data"])
            #expect(verify.exitCode == 0)
            #expect(verify.standardOutput.hasPrefix("ok: 1200 records checked (ids 1-1200)"))
            let partial = try await runTributary(["verify", "--data", dir + "/data", "--from", "1000"])
            #expect(partial.standardOutput.hasPrefix("ok: 201 records checked (ids 1000-1200)"))
            let version = try await runTributary(["--version"])
            #expect(version.exitCode == 0)
            #expect(version.standardOutput == TributaryVersion.current + "\n")
        }
    }

    /// `reindex` rebuilds the indexes in place (the EventLog tests repair a damaged entry with it)
    /// and refuses a directory without a log instead of creating one.
    @Test func reindexRebuildsTheIndexesAndRefusesAMissingLog() async throws {
        try await withTemporaryDirectory { dir in
            let input = try writeJSONLines(SampleEvents(seed: 11).records(700), to: dir + "/in.jsonl")
            _ = try await runTributary(["import", "--data", dir + "/data", input])
            let reindex = try await runTributary(["reindex", "--data", dir + "/data"])
            #expect(reindex.exitCode == 0, "\(reindex.standardError)")
            #expect(
                reindex.standardOutput.hasPrefix("indexes rebuilt from 700 changes in "), "\(reindex.standardOutput)")
            let verify = try await runTributary(["verify", "--data", dir + "/data"])
            #expect(verify.standardOutput.hasPrefix("ok: 700 records checked"), "\(verify.standardOutput)")
            #expect(verify.standardOutput.contains("indexed up to 700"), "\(verify.standardOutput)")

            let missing = try await runTributary(["reindex", "--data", dir + "/nothing"])
            #expect(missing.exitCode == 1)
            #expect(missing.standardError.contains("no log in \(dir)/nothing"), "\(missing.standardError)")
            #expect(!FileManager.default.fileExists(atPath: dir + "/nothing"))
        }
    }

    /// The executable applies its SQLite settings before anything opens a database, and a
    /// rebuild logs its phases at debug level.
    @Test func rebuildAppliesSQLiteSettingsAndLogsItsPhases() async throws {
        try await withTemporaryDirectory { dir in
            let input = try writeJSONLines(SampleEvents(seed: 9).records(300), to: dir + "/in.jsonl")
            _ = try await runTributary(["import", "--data", dir + "/data", input])
            let rebuild = try await runTributary(
                ["rebuild", "--data", dir + "/data"], environment: ["TRIBUTARY_LOG_LEVEL": "debug"])
            #expect(rebuild.exitCode == 0, "\(rebuild.standardError)")
            let log = rebuild.standardError
            #expect(log.contains("SQLite settings applied (memory statistics off)"), "\(log)")
            #expect(!log.contains("SQLite was in use"))
            #expect(log.components(separatedBy: "view built aside").count == 3, "\(log)")
            #expect(log.contains("views.rebuild.copied="), "\(log)")
        }
    }

    /// Views that were never built are derived data not there yet, not a difference: verify says
    /// so and how to build them, and passes; once built they are checked.
    @Test func verifyNotesViewsNotBuiltYetAndPasses() async throws {
        try await withTemporaryDirectory { dir in
            let input = try writeJSONLines(SampleEvents(seed: 8).records(300), to: dir + "/in.jsonl")
            _ = try await runTributary(["import", "--data", dir + "/data", "--no-views", input])
            let before = try await runTributary(["verify", "--data", dir + "/data"])
            #expect(before.exitCode == 0, "\(before.standardOutput)")
            #expect(
                before.standardOutput.contains(
                    "note: views not built yet: trilium, entity_changes (`tributary project`"))
            #expect(!before.standardOutput.contains("FAILED"))
            _ = try await runTributary(["project", "--data", dir + "/data"])
            let after = try await runTributary(["verify", "--data", dir + "/data"])
            #expect(after.exitCode == 0)
            #expect(
                after.standardOutput.contains(
                    "ok: views equal a rebuild from the log (entity_changes @ 300, trilium @ 300)"))
            #expect(!after.standardOutput.contains("not built"))
        }
    }

    /// verify names, for each damaged table, the smallest key whose row differs and which side
    /// lacks it: a row the view lost must not be reported at the row after it.
    @Test func verifyNamesTheFirstDifferingRowOfEachDamagedTable() async throws {
        try await withTemporaryDirectory { dir in
            let data = dir + "/data"
            let input = try writeJSONLines(SampleEvents(seed: 6).records(300), to: dir + "/in.jsonl")
            _ = try await runTributary(["import", "--data", data, input])
            let (noteIds, branchIds) = try withViews(data) { db in
                (
                    try String.fetchAll(db, sql: "SELECT noteId FROM notes ORDER BY noteId"),
                    try String.fetchAll(db, sql: "SELECT branchId FROM branches ORDER BY branchId")
                )
            }
            try withViews(data) { db in
                // notes: a column edited in one row, and an extra row sorting after it.
                try db.execute(sql: "UPDATE notes SET title = 'edited' WHERE noteId = ?", arguments: [noteIds[2]])
                try db.execute(sql: "INSERT INTO notes (noteId) VALUES (?)", arguments: [noteIds[2] + "z"])
                // branches: an extra row sorting first, and a row lost after it.
                try db.execute(sql: "INSERT INTO branches (branchId) VALUES ('0000extra')")
                try db.execute(sql: "DELETE FROM branches WHERE branchId = ?", arguments: [branchIds[5]])
                // entity_changes: a row lost, and a later one edited.
                try db.execute(sql: "DELETE FROM entity_changes WHERE id = 7")
                try db.execute(sql: "UPDATE entity_changes SET hash = 'x' WHERE id = 20")
            }
            let verify = try await runTributary(["verify", "--data", data])
            #expect(verify.exitCode == 1)
            let lines = verify.standardOutput.split(separator: "\n").map(String.init)
            #expect(lines.contains("FAILED: 3 view(s) differ from a rebuild (entity_changes @ 300, trilium @ 300)"))
            let differences = lines.filter { $0.hasPrefix("  view ") }
            #expect(differences.count == 3, "\(verify.standardOutput)")
            #expect(
                differences.contains {
                    $0.hasPrefix(
                        "  view trilium, table notes, key \"\(noteIds[2])\": the row differs from a rebuild's: ")
                        && $0.contains("edited")
                }, "\(differences)")
            #expect(
                differences.contains(
                    "  view trilium, table branches, key \"0000extra\": extra row in the view: a rebuild does not have it"
                ),
                "\(differences)")
            #expect(
                differences.contains(
                    "  view entity_changes, table entity_changes, key 7: row missing in the view: a rebuild has it"),
                "\(differences)")
        }
    }

    /// `rebuild VIEW` rebuilds that view only (the other keeps its rows, damage included, and
    /// its projector_state row), `rebuild` rebuilds all, and an unknown name changes nothing.
    @Test func rebuildRebuildsTheNamedViewsOrAllAndRefusesAnUnknownOne() async throws {
        try await withTemporaryDirectory { dir in
            let data = dir + "/data"
            let input = try writeJSONLines(SampleEvents(seed: 7).records(300), to: dir + "/in.jsonl")
            _ = try await runTributary(["import", "--data", data, input])
            func states() throws -> [String: Row] {
                try withViews(data) { db in
                    Dictionary(
                        uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT * FROM projector_state").map {
                            ($0["projector"] as String, $0)
                        })
                }
            }
            func differences() async throws -> [String] {
                let verify = try await runTributary(["verify", "--data", data])
                return verify.standardOutput.split(separator: "\n").filter { $0.hasPrefix("  view ") }.map(String.init)
            }
            try withViews(data) { db in
                try db.execute(sql: "UPDATE notes SET title = 'damaged' WHERE rowid = 1")
                try db.execute(sql: "DELETE FROM entity_changes WHERE id = 7")
            }
            let damaged = try await differences()
            #expect(damaged.count == 2, "\(damaged)")
            let built = try states()
            #expect(built.keys.sorted() == ["entity_changes", "trilium"])

            let unknown = try await runTributary(["rebuild", "--data", data, "widgets"])
            #expect(unknown.exitCode == 1)
            #expect(unknown.standardError.hasPrefix("error: unknown view 'widgets'"), "\(unknown.standardError)")
            #expect(try states() == built)
            #expect(try await differences() == damaged)

            let one = try await runTributary(["rebuild", "--data", data, "trilium"])
            #expect(one.exitCode == 0, "\(one.standardError)")
            #expect(one.standardOutput.hasPrefix("rebuilt trilium from 300 changes in "), "\(one.standardOutput)")
            let afterOne = try states()
            #expect(afterOne["entity_changes"] == built["entity_changes"])
            let trilium = try #require(afterOne["trilium"])
            #expect(trilium["lastEntityChangeId"] == 300)
            #expect(trilium["rebuiltAt"] as String? != built["trilium"]?["rebuiltAt"])
            #expect(
                try await differences() == [
                    "  view entity_changes, table entity_changes, key 7: row missing in the view: a rebuild has it"
                ])

            let all = try await runTributary(["rebuild", "--data", data])
            #expect(all.exitCode == 0, "\(all.standardError)")
            #expect(all.standardOutput.hasPrefix("rebuilt all views from 300 changes in "), "\(all.standardOutput)")
            let afterAll = try states()
            #expect(afterAll["entity_changes"]?["rebuiltAt"] as String? != built["entity_changes"]?["rebuiltAt"])
            #expect(afterAll["trilium"]?["rebuiltAt"] as String? != trilium["rebuiltAt"])
            let verify = try await runTributary(["verify", "--data", data])
            #expect(verify.exitCode == 0, "\(verify.standardOutput)")
            #expect(
                verify.standardOutput.contains(
                    "ok: views equal a rebuild from the log (entity_changes @ 300, trilium @ 300)"))
        }
    }

    @Test func aBadLineStopsTheImportWithItsLineNumberAndKeepsEarlierBatches() async throws {
        try await withTemporaryDirectory { dir in
            let records = SampleEvents(seed: 5).records(250)
            var lines = records.map { String(decoding: $0.wireJSON(), as: UTF8.self) }
            // Line 123 (in the second batch of 100) names an entity Trilium does not sync.
            lines[122] = lines[122].replacingOccurrences(of: "\"entityName\":\"", with: "\"entityName\":\"x")
            try (lines.joined(separator: "\n") + "\n").write(
                toFile: dir + "/in.jsonl", atomically: true, encoding: .utf8)
            let result = try await runTributary([
                "import", "--data", dir + "/data", "--batch-size", "100", dir + "/in.jsonl",
            ])
            #expect(result.exitCode == 1)
            #expect(result.standardError.contains("line 123:"), "\(result.standardError)")
            #expect(result.standardError.contains("entityChange.entityName"))
            try withReadOnlyStore(dir + "/data") { store throws in
                #expect(store.log.head == 100)
                #expect(try store.log.entityChangeID(forChangeId: records[100].change.changeId) == nil)
            }

            // A record that parses but fails validation (changeId with punctuation) on line 7.
            var bad = lines
            bad[122] = String(decoding: records[122].wireJSON(), as: UTF8.self)
            bad[206] = bad[206].replacingOccurrences(
                of: "\"changeId\":\"\(records[206].change.changeId)\"", with: "\"changeId\":\"bad-id\"")
            try (bad.joined(separator: "\n") + "\n").write(
                toFile: dir + "/in2.jsonl", atomically: true, encoding: .utf8)
            let second = try await runTributary([
                "import", "--data", dir + "/data", "--batch-size", "100", dir + "/in2.jsonl",
            ])
            #expect(second.exitCode == 1)
            #expect(second.standardError.contains("line 207:"), "\(second.standardError)")
            #expect(second.standardError.contains("changeId"))
            try withReadOnlyStore(dir + "/data") { store throws in #expect(store.log.head == 200) }
        }
    }

    @Test func malformedJSONAndMissingFilesAreClearErrors() async throws {
        try await withTemporaryDirectory { dir in
            try "{\"entityChange\": {\"entityName\": \"notes\",\n".write(
                toFile: dir + "/bad.jsonl", atomically: true, encoding: .utf8)
            let bad = try await runTributary(["import", "--data", dir + "/data", dir + "/bad.jsonl"])
            #expect(bad.exitCode == 1)
            #expect(bad.standardError.contains("line 1: malformed JSON"))
            let missing = try await runTributary(["import", "--data", dir + "/data", dir + "/nope.jsonl"])
            #expect(missing.exitCode == 1)
            #expect(missing.standardError.contains("cannot open"))
            let noLog = try await runTributary(["replay", "--data", dir + "/empty"])
            #expect(noLog.exitCode == 1)
            #expect(noLog.standardError.contains("no log in"))
            // A data directory or backup destination that cannot be created is named, with the reason.
            try "x".write(toFile: dir + "/file", atomically: true, encoding: .utf8)
            for arguments in [
                ["credentials", "--data", dir + "/file/data"], ["backup", "--data", dir + "/data", dir + "/file/copy"],
            ] {
                let unusable = try await runTributary(arguments)
                #expect(unusable.exitCode == 1)
                #expect(
                    unusable.standardError
                        == "error: cannot create \(dir)/file: a file that is not a directory is in the way\n",
                    "\(arguments)")
            }
        }
    }
}

/// Runs `body` in a write transaction on `<data>/views.sqlite`, closed again before it returns.
private func withViews<R>(_ data: String, _ body: (Database) throws -> R) throws -> R {
    let queue = try DatabaseQueue(path: data + "/views.sqlite")
    defer { try? queue.close() }
    return try queue.write(body)
}
