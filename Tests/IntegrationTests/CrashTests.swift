import EventLog
import Foundation
import Projections
import Subprocess
import SystemPackage
import Testing
import Tributary
import TributaryCore
import TributaryTesting

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// SIGKILL a real `tributary import` while it writes new changes; nothing it acknowledged may be
/// lost, the log must verify, and the next import must continue without duplicates.
@Suite(.timeLimit(.minutes(5))) struct CrashTests {
    /// One `ack FIRST LAST LINE` of `import --print-acks`: a durable batch, its new ids (nil for a
    /// batch of duplicates only, printed `- -`) and its last input line.
    struct Ack {
        var ids: ClosedRange<UInt64>?
        var line: Int

        init?(_ text: String) {
            let fields = text.split(separator: " ")
            guard fields.count == 4, fields[0] == "ack", let line = Int(fields[3]) else { return nil }
            self.line = line
            if let first = UInt64(fields[1]), let last = UInt64(fields[2]), first <= last {
                ids = first...last
            } else if fields[1] == "-" && fields[2] == "-" {
                ids = nil
            } else {
                return nil
            }
        }
    }

    /// Feeds `input` to an import on standard input, in batches of 10, and SIGKILLs it once
    /// `killAfter` batches with new ids are acknowledged (or after `fallback`, should they never
    /// come). Returns every acknowledgement it printed and whether the acknowledgements, not the
    /// fallback, triggered the kill.
    ///
    /// The input is all in the pipe before the import starts, and the pipe's write end stays open
    /// until it ends: the import reads without waiting on this process, never runs out of work
    /// to finish, and so is killed mid-import however fast the binary is.
    func importAndKill(data: String, input: [UInt8], killAfter: Int, fallback: Duration) async throws -> (
        acks: [Ack], killedWhileWriting: Bool, status: TerminationStatus
    ) {
        var ends: [Int32] = [0, 0]
        try #require(pipe(&ends) == 0)
        // Not into other tests' children (the read end reaches this one as its standard input).
        _ = fcntl(ends[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(ends[1], F_SETFD, FD_CLOEXEC)
        // F_SETPIPE_SZ (Linux, not exported to Swift): room for the whole input, up to 1 MiB.
        let writer = FileDescriptor(rawValue: ends[1])
        defer { try? writer.close() }
        try #require(fcntl(ends[1], 1031, 1 << 20) >= input.count)
        #expect(try writer.writeAll(input) == input.count)
        let result = try await Subprocess.run(
            .path(FilePath(TributaryBinary.path)),
            arguments: ["import", "--data", data, "--batch-size", "10", "--print-acks", "-"],
            input: .fileDescriptor(FileDescriptor(rawValue: ends[0]), closeAfterSpawningProcess: true),
            output: .sequence, error: .discarded
        ) { execution in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await Task.sleep(for: fallback)
                    try? execution.send(signal: .kill)
                }
                var acks: [Ack] = []
                var fresh = 0
                for try await line in execution.standardOutput.strings() {
                    guard let ack = Ack(line) else { continue }
                    // Acks printed after the signal was sent are durable too: keep reading to the end.
                    acks.append(ack)
                    guard ack.ids != nil else { continue }
                    fresh += 1
                    if fresh == killAfter { try? execution.send(signal: .kill) }
                }
                group.cancelAll()
                return (acks, fresh >= killAfter)
            }
        }
        return (result.closureResult.0, result.closureResult.1, result.terminationStatus)
    }

    @Test func killedImportsLoseNothingTheyAcknowledged() async throws {
        try await withTemporaryDirectory { dir in
            // Each round moves on by at most 200 lines (a reader that lags sees more than its
            // kill point acknowledged), so 20 rounds never use up 5000.
            let records = SampleEvents(seed: 11).records(5000)
            let lines = records.map { $0.wireJSON() + [0x0A] }
            let data = dir + "/data"
            var rng = SplitMix64(seed: 2026)
            var kills = 0
            var killedWhileWriting = 0
            // Every line up to this one was acknowledged in some round.
            var maxAcked = 0
            for round in 0..<20 {
                // Each round re-reads the last 100 acknowledged lines (duplicates, in batches cut
                // differently each time) and then has 200 new lines to write: a kill after 1-8
                // batches of new changes always lands mid-write.
                let start = max(0, maxAcked - 100)
                let end = min(records.count, maxAcked + 200)
                let killAfter = 1 + Int(rng.next() % 8)
                let outcome = try await importAndKill(
                    data: data, input: Array(lines[start..<end].joined()), killAfter: killAfter,
                    fallback: .seconds(60))
                if outcome.status == .signaled(SIGKILL) { kills += 1 }
                if outcome.killedWhileWriting { killedWhileWriting += 1 }
                let fresh = outcome.acks.filter { $0.ids != nil }
                #expect(fresh.count >= killAfter, "round \(round): \(fresh.count) of \(killAfter) acks")
                maxAcked = max(maxAcked, start + (outcome.acks.map(\.line).max() ?? 0))
                try withReadOnlyStore(data) { store throws in
                    // Every acknowledged line, and every acknowledged id, is there.
                    for (i, record) in records[..<maxAcked].enumerated() {
                        #expect(
                            try store.log.entityChangeID(forChangeId: record.change.changeId) != nil,
                            "round \(round): line \(i + 1) lost")
                    }
                    if let last = fresh.last?.ids?.upperBound {
                        #expect(store.log.head.rawValue >= last, "round \(round): id \(last) lost")
                    }
                    let report = try store.log.verify()
                    #expect(report.isSound, "round \(round): \(report.problems)")
                    // Nothing was written twice.
                    #expect(store.log.head.rawValue <= UInt64(end), "round \(round)")
                }
            }
            #expect(kills == 20, "only \(kills) imports were killed")
            #expect(killedWhileWriting == 20, "only \(killedWhileWriting) kills came after new changes")
            #expect(maxAcked < records.count - 200, "the rounds ran out of new input: \(maxAcked)")

            // The next import completes and adds exactly what was missing.
            let before = try withReadOnlyStore(data) { $0.log.head.rawValue }
            let input = try writeJSONLines(records, to: dir + "/in.jsonl")
            let final = try await runTributary(["import", "--data", data, input])
            #expect(final.exitCode == 0, "\(final.standardError)")
            #expect(
                final.standardOutput.contains("applied \(records.count - Int(before)), duplicates skipped \(before),"),
                "\(final.standardOutput)")
            try withReadOnlyStore(data) { store throws in
                #expect(store.log.head == EntityChangeID(UInt64(records.count)))
                for (i, record) in records.enumerated() {
                    #expect(
                        try store.log.change(at: EntityChangeID(UInt64(i + 1)))?.change.changeId
                            == record.change.changeId)
                }
            }
            let verify = try await runTributary(["verify", "--data", data])
            #expect(verify.exitCode == 0, "\(verify.standardOutput)")
            let again = try await runTributary(["import", "--data", data, input])
            #expect(again.standardOutput.contains("applied 0, duplicates skipped \(records.count)"))
        }
    }
}

@Suite(.timeLimit(.minutes(3))) struct CorruptionTests {
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

@Suite(.timeLimit(.minutes(3))) struct DirectoryLockTests {
    @Test func aDirectoryOpenForWritingElsewhereIsRefusedWhileReadersWork() async throws {
        try await withTemporaryDirectory { dir in
            let data = dir + "/data"
            let records = SampleEvents(seed: 13).records(300)
            _ = try await runTributary(["import", "--data", data, try writeJSONLines(records, to: dir + "/in.jsonl")])
            // A writer that holds the directory while it waits for more input on stdin; its first
            // acknowledged record proves it holds the writer lock.
            let extra = SampleEvents(seed: 14).records(2)
            _ = try await Subprocess.run(
                .path(FilePath(TributaryBinary.path)),
                arguments: ["import", "--data", data, "--batch-size", "1", "--print-acks", "-"],
                input: .inputWriter, output: .sequence, error: .discarded
            ) { execution in
                _ = try await execution.standardInputWriter.write(Array(extra[0].wireJSON() + [0x0A]))
                var lines = execution.standardOutput.strings().makeAsyncIterator()
                let ack = try await lines.next()
                #expect(ack?.hasPrefix("ack 301 301") == true, "\(String(describing: ack))")
                #expect {
                    _ = try Store(dataDirectory: data, logger: logger)
                } throws: { ($0 as? EventLogError)?.code == .directoryInUse }
                let second = try await runTributary(["import", "--data", data, dir + "/in.jsonl"])
                #expect(second.exitCode == 1)
                #expect(second.standardError.contains("open for writing by another process"))
                // Readers are not blocked by the writer.
                let replay = try await runTributary(["replay", "--data", data])
                #expect(replay.exitCode == 0)
                #expect(replay.standardOutput.split(separator: "\n").count == 301)
                let status = try await runTributary(["status", "--data", data])
                #expect(status.exitCode == 0)
                _ = try await execution.standardInputWriter.write(Array(extra[1].wireJSON() + [0x0A]))
                try await execution.standardInputWriter.finish()
                while try await lines.next() != nil {}
            }
            try withReadOnlyStore(data) { store throws in #expect(store.log.head == 302) }
        }
    }
}

/// SIGKILL `tributary project` while it projects: no view's checkpoint may run ahead of (or
/// behind) its rows, and the views converge to a rebuild.
@Suite(.timeLimit(.minutes(5))) struct ProjectionCrashTests {
    @Test func killedProjectionsNeverLeaveAViewOutOfStepWithItsCheckpoint() async throws {
        try await withTemporaryDirectory { dir in
            let data = dir + "/data"
            let records = SampleEvents(seed: 31).records(2000 + 13 * 1500)
            // The first 2000 get built views (the bulk path); each round then imports 1500 more
            // without projecting them, and a `project` that catches up incrementally is killed.
            _ = try await runTributary([
                "import", "--data", data, try writeJSONLines(Array(records[..<2000]), to: dir + "/a.jsonl"),
            ])
            var rng = SplitMix64(seed: 7)
            var killed = 0
            var checkpoints: Set<UInt64> = []
            // Eight rounds, then up to five more while fewer than three were killed: a `project`
            // that finishes its 1500 changes before the kill (a fast moment of a busy machine)
            // is not killed, and one full-suite run killed only 2 of 8.
            var rounds = 0
            for round in 0..<13 {
                if round >= 8 && killed >= 3 { break }
                rounds += 1
                let chunk = Array(records[(2000 + round * 1500)..<(3500 + round * 1500)])
                let more = try await runTributary([
                    "import", "--data", data, "--no-views", try writeJSONLines(chunk, to: dir + "/r.jsonl"),
                ])
                #expect(more.exitCode == 0, "\(more.standardError)")
                let delay = Duration.milliseconds((round < 8 ? 30 : 10) + Int(rng.next() % (round < 8 ? 400 : 100)))
                let result = try await Subprocess.run(
                    .path(FilePath(TributaryBinary.path)),
                    arguments: ["project", "--data", data, "--batch-size", "300"],
                    input: .none, output: .discarded, error: .discarded
                ) { execution in
                    // Timed on a thread of its own: a Task.sleep on the busy pool can oversleep.
                    try await sleepOnOwnThread(for: delay)
                    try? execution.send(signal: .kill)
                }
                if result.terminationStatus != .exited(0) { killed += 1 }
                let store = try Store(dataDirectory: data, readOnly: true, logger: logger)
                defer { store.close() }
                let states = try #require(try store.views?.states())
                for state in states.values {
                    #expect(state.lastEntityChangeId <= store.log.head)
                    checkpoints.insert(state.lastEntityChangeId.rawValue)
                }
                let differences = try await ViewVerifier.verify(
                    log: store.log, views: store.views!, scratchDirectory: dir)
                #expect(differences.isEmpty, "\(differences)")
            }
            #expect(killed >= 3, "only \(killed) of \(rounds) runs were killed mid-way")
            #expect(checkpoints.count >= 3, "the kills all landed at the same checkpoint: \(checkpoints)")
            let finish = try await runTributary(["project", "--data", data])
            #expect(finish.exitCode == 0)
            let verify = try await runTributary(["verify", "--data", data])
            #expect(verify.exitCode == 0, "\(verify.standardOutput)")
            #expect(
                verify.standardOutput.contains(
                    "ok: views equal a rebuild from the log (entity_changes @ \(2000 + rounds * 1500), trilium @ \(2000 + rounds * 1500))"
                ))
        }
    }

    /// Every table of every view: its digest (row count and hash, in key order).
    func viewDigests(_ views: ViewStore) throws -> [String: ViewVerifier.Digest] {
        try views.pool.read { db in
            var digests: [String: ViewVerifier.Digest] = [:]
            for table in StandardProjectors.all.flatMap(\.tables) {
                digests[table.name] = try ViewVerifier.digest(db, table)
            }
            return digests
        }
    }

    /// SIGKILL `tributary rebuild` while it builds or swaps the views in: the views stay whole
    /// (never dropped without their replacement), and the scratch databases are swept on open.
    @Test func killedRebuildsLeaveTheViewsWhole() async throws {
        try await withTemporaryDirectory { dir in
            let data = dir + "/data"
            let imported = try await runTributary([
                "import", "--data", data,
                try writeJSONLines(SampleEvents(seed: 32).records(30_000), to: dir + "/a.jsonl"),
            ])
            #expect(imported.exitCode == 0, "\(imported.standardError)")
            let (before, states) = try {
                let store = try Store(dataDirectory: data, readOnly: true, logger: logger)
                defer { store.close() }
                return (try viewDigests(store.views!), try store.views!.states())
            }()
            #expect(before["entity_changes"]?.rows == 30_000)
            var rng = SplitMix64(seed: 11)
            var killed = 0
            for _ in 0..<6 {
                let delay = Duration.milliseconds(100 + Int(rng.next() % 1500))
                let result = try await Subprocess.run(
                    .path(FilePath(TributaryBinary.path)), arguments: ["rebuild", "--data", data],
                    input: .none, output: .discarded, error: .discarded
                ) { execution in
                    try await sleepOnOwnThread(for: delay)
                    try? execution.send(signal: .kill)
                }
                if result.terminationStatus != .exited(0) { killed += 1 }
                let store = try Store(dataDirectory: data, logger: logger)
                defer { store.close() }
                #expect(try viewDigests(store.views!) == before)
                #expect(try store.views!.states() == states)
                let leftovers = try FileManager.default.contentsOfDirectory(atPath: data).filter {
                    $0.contains(".rebuild-")
                }
                #expect(leftovers.isEmpty, "scratch files survived an open: \(leftovers)")
            }
            #expect(killed >= 3, "only \(killed) of 6 rebuilds were killed mid-way")
        }
    }
}

/// A disk that fills up mid-import: a 4 MB tmpfs mounted in a private mount namespace of a child
/// shell (`unshare -m`, root only), so nothing outside the test sees it.
@Suite(.timeLimit(.minutes(3))) struct DiskFullTests {
    /// Whether this process may mount a tmpfs in a private mount namespace (root only).
    static let canMountTmpfs: ConditionTrait = .enabled("needs root to mount a tmpfs in a private mount namespace") {
        // One directory per probe: each test evaluates its own, possibly at the same time.
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("tributary-mount-probe-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        return try await runInMountNamespace("mount -t tmpfs -o size=1m tmpfs '\(directory)'") == 0
    }

    @Test(canMountTmpfs)
    func aFullDiskStopsTheImportClearlyAndKeepsWhatWasAcknowledged() async throws {
        try await withTemporaryDirectory { dir in
            // ~6 MB of records for 4 MB of disk.
            let input = try writeJSONLines(SampleEvents(seed: 9).records(8000), to: dir + "/in.jsonl")
            try FileManager.default.createDirectory(atPath: dir + "/small", withIntermediateDirectories: true)
            let binary = TributaryBinary.path
            // Results go to `dir`, outside the tmpfs, which vanishes with the namespace.
            let script = """
                mount -t tmpfs -o size=4m tmpfs '\(dir)/small' || exit 97
                '\(binary)' import --data '\(dir)/small/data' '\(input)' > '\(dir)/import.out' 2>&1
                echo $? > '\(dir)/import.rc'
                '\(binary)' verify --data '\(dir)/small/data' > '\(dir)/verify.out' 2>&1
                '\(binary)' status --data '\(dir)/small/data' --json > '\(dir)/status.json'
                """
            #expect(try await runInMountNamespace(script) == 0)
            func read(_ name: String) throws -> String { try String(contentsOfFile: dir + "/" + name, encoding: .utf8) }
            // A clear error and a clean exit, not a crash.
            #expect(try read("import.rc").trimmingCharacters(in: .whitespacesAndNewlines) == "1")
            let output = try read("import.out")
            #expect(output.contains("error: the disk is full"), "\(output)")
            #expect(output.contains("free space and retry"))
            // Every acknowledged batch is there, whole, and the log checks out.
            let status = try JSONParser.parseObject(Array(try read("status.json").utf8))
            let head = try #require(status["head"]?.intValue)
            #expect(head > 0 && head < 8000 && head % 1000 == 0, "head \(head)")
            #expect(try read("verify.out").contains("ok: \(head) records checked"))
        }
    }
}

extension DiskFullTests {
    /// A running server whose log's disk fills answers 507 with what to do (not a bare 500), and
    /// takes writes again once space is freed, without a restart.
    @Test(canMountTmpfs)
    func aServerWithAFullDiskAnswers507AndRecoversWhenSpaceIsFreed() async throws {
        try await withTemporaryDirectory { dir in
            let data = dir + "/data"
            try FileManager.default.createDirectory(atPath: data + "/log", withIntermediateDirectories: true)
            // Only the log is on the small tmpfs.
            let setup = """
                mount -t tmpfs -o size=3m tmpfs '\(data)/log' || exit 97
                dd if=/dev/zero of='\(data)/log/filler' bs=1M count=1 2>/dev/null
                """
            try await withServerInMountNamespace(
                dir: dir, data: data, setup: setup, freeSpace: "rm '\(data)/log/filler'"
            ) { port, token in
                var refused: (Int, String)?
                for _ in 0..<40 {
                    let answer = try await postNotes(
                        port: port, token: token, 100, title: String(repeating: "x", count: 2000))
                    if answer.0 != 200 {
                        refused = answer
                        break
                    }
                }
                let (status, message) = try #require(refused)
                #expect(status == 507, "\(message)")
                #expect(message.contains("disk is full") && !message.contains(dir), "\(message)")
                _ = FileManager.default.createFile(atPath: dir + "/free", contents: nil)
                try await Task.sleep(for: .milliseconds(300))
                let after = try await postNotes(port: port, token: token, 1, title: "after")
                #expect(after.0 == 200, "\(after.1)")
            }
        }
    }

    /// The views' disk fills while the log's does not: the node stays up and takes writes, the views
    /// fall behind (and say so), and they catch up by themselves once space is freed. (Before, the
    /// projector's failure stopped the whole node.)
    @Test(canMountTmpfs)
    func aFullDiskUnderTheViewsLeavesTheNodeUpAndTheViewsCatchUpLater() async throws {
        try await withTemporaryDirectory { dir in
            let data = dir + "/data"
            try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: dir + "/reallog", withIntermediateDirectories: true)
            // The data directory is a 64 MB tmpfs, 60 MB of it taken by a filler, with the log
            // bind-mounted from the real disk: only views.sqlite runs out of space, and has room
            // again once the filler goes.
            let setup = """
                mount -t tmpfs -o size=64m tmpfs '\(data)' || exit 97
                mkdir '\(data)/log' && mount --bind '\(dir)/reallog' '\(data)/log' || exit 98
                dd if=/dev/zero of='\(data)/filler' bs=1M count=60 2>/dev/null
                """
            try await withServerInMountNamespace(
                dir: dir, data: data, setup: setup, freeSpace: "rm '\(data)/filler'"
            ) { port, token in
                for _ in 0..<30 {
                    let answer = try await postNotes(
                        port: port, token: token, 100, title: String(repeating: "x", count: 2000))
                    #expect(answer.0 == 200, "\(answer.1)")
                }
                func lags() async throws -> [Int] {
                    var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/api/status")!)
                    request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
                    let (body, _) = try await URLSession.shared.data(for: request)
                    let views = try JSONParser.parseObject(Array(body))["views"]?.objectValue
                    return views?.members.compactMap { $0.value.objectValue?["lag"]?.intValue } ?? []
                }
                // 3000 changes of ~2 KB do not fit: the views are stuck behind, the node is not.
                try await Task.sleep(for: .milliseconds(500))
                let stuck = try await lags()
                #expect(stuck.count == 2 && stuck.allSatisfy { $0 > 0 }, "\(stuck)")
                #expect(isListening(port: port))
                #expect(try await postNotes(port: port, token: token, 1, title: "still up").0 == 200)
                _ = FileManager.default.createFile(atPath: dir + "/free", contents: nil)
                var last = stuck
                for _ in 0..<600 where last != [0, 0] {
                    try await Task.sleep(for: .milliseconds(100))
                    last = try await lags()
                }
                let log = (try? String(contentsOfFile: dir + "/serve.log", encoding: .utf8)) ?? ""
                #expect(last == [0, 0], "\(log.suffix(1500))")
            }
        }
    }
}

/// Runs `tributary serve --data DATA` in a private mount namespace of a child shell, after `setup`
/// (shell lines that mount and fill small disks), and gives `body` its port and apiToken. The
/// shell runs `freeSpace` once `DIR/free` exists (a test creates it), and stops the server when
/// `body` returns. Credentials are copied to `DIR`, since a tmpfs is seen only inside.
private func withServerInMountNamespace(
    dir: String, data: String, setup: String, freeSpace: String,
    _ body: (_ port: Int, _ token: String) async throws -> Void
) async throws {
    let port = freePort()
    // Each wait also ends when the test process is gone: a test run that crashed used to leave
    // this shell looping, and its server running, for good.
    let script = """
        parent=$PPID
        \(setup)
        '\(TributaryBinary.path)' serve --data '\(data)' --port \(port) > '\(dir)/serve.log' 2>&1 &
        server=$!
        wait_for() {
            while [ ! -e "$1" ]; do
                kill -0 $parent 2>/dev/null || { kill -TERM $server; exit 1; }
                sleep 0.05
            done
        }
        wait_for '\(data)/credentials.json'
        cp '\(data)/credentials.json' '\(dir)/credentials.json'
        wait_for '\(dir)/free'
        \(freeSpace)
        wait_for '\(dir)/stop'
        kill -TERM $server
        wait $server
        """
    let shell = Task { try await runInMountNamespace(script) }
    func stop() async {
        _ = FileManager.default.createFile(atPath: dir + "/free", contents: nil)
        _ = FileManager.default.createFile(atPath: dir + "/stop", contents: nil)
        _ = try? await shell.value
    }
    do {
        var token: String?
        for _ in 0..<600 where token == nil {
            if let bytes = FileManager.default.contents(atPath: dir + "/credentials.json"), isListening(port: port) {
                token = try JSONParser.parseObject(Array(bytes))["apiToken"]?.stringValue
            } else {
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        try await body(port, try #require(token))
    } catch {
        await stop()
        throw error
    }
    await stop()
}

/// Writes `count` new notes through `POST /api/changes`: the status and the body.
private func postNotes(port: Int, token: String, _ count: Int, title: String) async throws -> (Int, String) {
    let rows = (0..<count).map { _ in
        #"{"entityName":"notes","entityId":"\#(RandomID.make())","entity":{"title":"\#(title)","type":"text","mime":"text/html","isProtected":0}}"#
    }
    var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/api/changes")!)
    request.httpMethod = "POST"
    request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
    request.httpBody = Data(("[" + rows.joined(separator: ",") + "]").utf8)
    let (body, response) = try await URLSession.shared.data(for: request)
    return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: body, as: UTF8.self))
}
