import EventLog
import Foundation
public import Logging
import Sync
import TributaryCore

/// One benchmark figure, printed in the line format of `shared/docs/benchmarks.md`.
public struct BenchResult: Sendable {
    public var workload: String
    public var variant: String
    public var events: Int
    public var seconds: Double
    /// JSON bytes of the events (1 MB = 10^6 B), whatever is stored.
    public var bytes: Int
    public var extra: [(String, String)]

    public var eventsPerSecond: Double { Double(events) / seconds }

    public var line: String {
        var fields = [
            ("workload", workload), ("system", "tributary"), ("events", String(events)),
            ("seconds", String(format: "%.3f", seconds)), ("events_per_s", String(format: "%.0f", eventsPerSecond)),
            ("mb_per_s", String(format: "%.1f", Double(bytes) / 1e6 / seconds)), ("variant", variant),
        ]
        fields += extra
        return fields.map { "\($0.0)=\($0.1)" }.joined(separator: " ")
    }

    public var json: String {
        var object: [String: Any] = [
            "workload": workload, "system": "tributary", "events": events, "seconds": seconds,
            "events_per_s": eventsPerSecond, "mb_per_s": Double(bytes) / 1e6 / seconds, "variant": variant,
        ]
        for (key, value) in extra { object[key] = Double(value) ?? value }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}

/// `tributary bench`: end-to-end workloads through the real apply path and log, in this process.
public struct Bench: Sendable {
    public static let workloads = ["W1-append", "W2-scan", "W3-tail", "W4-catchup", "W5-rebuild"]

    public var workloads: [String]
    public var events: Int?
    public var input: String?
    public var durability: Store.Durability = .fsync
    public var batchSize = 1000
    /// Also run W1 and W2 over HTTP against a node on 127.0.0.1.
    public var http = false
    /// W3's cases and the seconds each runs.
    public var tailCases = TailCase.standard
    public var tailSeconds = 10

    public init(workloads: [String], events: Int?, input: String?) {
        self.workloads = workloads
        self.events = events
        self.input = input
    }

    /// The events, loaded into memory before any clock starts, with their JSON sizes.
    func loadEvents() throws -> ([ChangeRecord], Int) {
        if let input {
            let fd = open(input, O_RDONLY)
            guard fd >= 0 else { throw ImportError(line: 0, message: "cannot read \(input)") }
            defer { close(fd) }
            // Streamed: `--events N` reads only the first N lines of a large file.
            var reader = LineReader(fd: fd)
            var records: [ChangeRecord] = []
            var bytes = 0
            while events.map({ records.count < $0 }) ?? true, let line = try reader.next() {
                guard !line.isEmpty else { continue }
                do {
                    records.append(try ChangeRecord(wireJSON: line))
                } catch {
                    throw ImportError(line: reader.lineNumber, message: error.description)
                }
                bytes += line.count
            }
            return (records, bytes)
        }
        let records = SampleEvents().records(events ?? 100_000)
        return (records, records.reduce(0) { $0 + $1.wireJSON().count })
    }

    /// Runs the selected workloads in a scratch data directory under `scratch`.
    public func run(scratch: String, logger: Logger, report: (BenchResult) -> Void) async throws {
        for name in workloads where !Bench.workloads.contains(name) {
            throw ImportError(
                line: 0, message: "unknown workload \(name); known: \(Bench.workloads.joined(separator: ", "))")
        }
        let (records, bytes) = try loadEvents()
        let directory = scratch + "/bench-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try Store(dataDirectory: directory, durability: durability, logger: logger)
        defer { store.close() }

        // W1: batches of `batchSize`, one in flight, each through the whole apply path.
        var latencies: [Double] = []
        let started = monotonicSeconds()
        var applied = 0
        for start in stride(from: 0, to: records.count, by: batchSize) {
            let batch = Array(records[start..<min(records.count, start + batchSize)])
            let t = monotonicSeconds()
            let result = try await store.applier.applyRemote(batch, from: .recordInstance)
            latencies.append(monotonicSeconds() - t)
            applied += result.applied
        }
        let appendSeconds = monotonicSeconds() - started
        let catchupStarted = monotonicSeconds()
        try await store.log.flushIndex()
        let catchup = monotonicSeconds() - catchupStarted
        guard applied == records.count else {
            throw ImportError(
                line: 0, message: "only \(applied) of \(records.count) events were applied (duplicates in the input?)")
        }
        if workloads.contains("W1-append") {
            latencies.sort()
            report(
                BenchResult(
                    workload: "W1-append", variant: "inprocess-apply", events: records.count, seconds: appendSeconds,
                    bytes: bytes,
                    extra: [
                        ("durability", durability.rawValue), ("batch", String(batchSize)),
                        ("commit_p50_ms", String(format: "%.2f", percentile(latencies, 50) * 1e3)),
                        ("commit_p99_ms", String(format: "%.2f", percentile(latencies, 99) * 1e3)),
                        ("disk_mb", String(format: "%.0f", Double(allocatedBytes(Store.logPath(directory))) / 1e6)),
                        ("index_catchup_s", String(format: "%.3f", catchup)),
                    ]))
        }
        if workloads.contains("W2-scan") {
            report(try scanChecked(store, records.count, bytes))
            report(try scanDecoded(store, records.count, bytes))
        }
        if http { try await runHTTP(records, bytes, scratch: scratch, logger: logger, report: report) }
        if workloads.contains("W3-tail") {
            try await runTail(records, bytes, scratch: scratch, logger: logger, report: report)
        }
        if workloads.contains("W4-catchup") {
            try await runCatchup(records, bytes, scratch: scratch, logger: logger, report: report)
        }
        if workloads.contains("W5-rebuild"), let projections = store.projections {
            let started = monotonicSeconds()
            try await projections.rebuild()
            let seconds = monotonicSeconds() - started
            let views = ["", "-wal"].reduce(Int64(0)) { total, suffix in
                var info = stat()
                return total + (stat(directory + "/views.sqlite" + suffix, &info) == 0 ? Int64(info.st_size) : 0)
            }
            report(
                BenchResult(
                    workload: "W5-rebuild", variant: "all-views", events: records.count, seconds: seconds, bytes: bytes,
                    extra: [
                        ("views", projections.projectors.map(\.name).joined(separator: "+")),
                        ("views_mb", String(format: "%.0f", Double(views) / 1e6)),
                    ]))
        }
    }

    /// W2 over checked record bytes: every record's checksum verified, every byte touched.
    func scanChecked(_ store: Store, _ count: Int, _ bytes: Int) throws -> BenchResult {
        let started = monotonicSeconds()
        var cursor = EntityChangeID.zero
        var n = 0
        var pages = 0
        var check: UInt64 = 0
        while true {
            let last = try store.log.scanRecords(after: cursor, limit: 1000) { id, record in
                check ^= UInt64(record.count) &+ id.rawValue
                n += 1
            }
            guard let last else { break }
            cursor = last
            pages += 1
        }
        let seconds = monotonicSeconds() - started
        guard n == count else { throw ImportError(line: 0, message: "W2 read \(n) of \(count) events") }
        return BenchResult(
            workload: "W2-scan", variant: "inprocess-page1000-crc", events: n, seconds: seconds, bytes: bytes,
            extra: [
                ("pages", String(pages)), ("last_id", String(cursor.rawValue)), ("check", String(check, radix: 16)),
            ])
    }

    /// W2 decoding every change into values (what an API reader pays).
    func scanDecoded(_ store: Store, _ count: Int, _ bytes: Int) throws -> BenchResult {
        let started = monotonicSeconds()
        var cursor = EntityChangeID.zero
        var n = 0
        while true {
            let page = try store.log.changes(after: cursor, limit: 1000)
            guard let last = page.last else { break }
            n += page.count
            cursor = last.id
        }
        let seconds = monotonicSeconds() - started
        guard n == count else { throw ImportError(line: 0, message: "W2 read \(n) of \(count) events") }
        return BenchResult(
            workload: "W2-scan", variant: "inprocess-page1000-decoded", events: n, seconds: seconds, bytes: bytes,
            extra: [])
    }
}

/// Nearest-rank percentile of an ascending array (as the reference programs compute it).
func percentile<T: AdditiveArithmetic>(_ sorted: [T], _ p: Double) -> T {
    guard !sorted.isEmpty else { return .zero }
    let k = min(sorted.count, max(1, Int(p / 100 * Double(sorted.count) + 0.5)))
    return sorted[k - 1]
}
