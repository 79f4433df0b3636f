import Glibc
public import Sync
import TributaryCore

/// A line of the input that could not be imported. Batches before it are applied; nothing of
/// its batch is.
public struct ImportError: Error, Sendable, CustomStringConvertible {
    public var line: Int
    public var message: String
    public var description: String { "line \(line): \(message)" }
}

/// Totals of an import.
public struct ImportSummary: Sendable {
    public var lines = 0
    public var report = ApplyReport()
    public var seconds = 0.0
    public var head: UInt64 = 0
}

/// Progress of a running import, reported between batches.
public struct ImportProgress: Sendable {
    public var bytesRead: Int
    public var totalBytes: Int?
    public var lines: Int
}

/// `tributary import`: JSON Lines of Trilium sync records applied as remote changes (each
/// record's own instanceId counts as its sender), in batches, parsing the next batch while the
/// previous one commits.
public struct Importer: Sendable {
    public var batchSize = 1000

    public init(batchSize: Int = 1000) { self.batchSize = batchSize }

    /// Imports `path` (`-` for standard input).
    ///
    /// - Parameters:
    ///   - acknowledged: called after each batch is durable with its id range and last line.
    /// - Throws: `ImportError` naming the line; `EventLogError` from storage.
    public func run(
        path: String, into store: Store, progress: @escaping (ImportProgress) -> Void = { _ in },
        acknowledged: @escaping (ClosedRange<UInt64>?, Int) -> Void = { _, _ in }
    ) async throws -> ImportSummary {
        let fd = path == "-" ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw ImportError(line: 0, message: "cannot open \(path): \(String(cString: strerror(errno)))")
        }
        defer { if fd != STDIN_FILENO { close(fd) } }
        var info = stat()
        let total = fstat(fd, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG ? Int(info.st_size) : nil
        let started = monotonicSeconds()
        var reader = LineReader(fd: fd)
        var summary = ImportSummary()
        var inFlight: (task: Task<ApplyReport, any Error>, lines: [Int])?

        func settle() async throws {
            guard let pending = inFlight else { return }
            inFlight = nil
            do {
                let report = try await pending.task.value
                summary.report.add(report)
                acknowledged(
                    report.range.map { $0.lowerBound.rawValue...$0.upperBound.rawValue }, pending.lines.last ?? 0)
            } catch let error as ApplyError {
                throw ImportError(line: pending.lines[error.index], message: error.cause.description)
            }
        }

        while true {
            var batch: [ChangeRecord] = []
            batch.reserveCapacity(batchSize)
            var lines: [Int] = []
            var parseError: ImportError?
            while batch.count < batchSize {
                // About to wait for input (a live pipe): acknowledge what is in flight first.
                if !reader.hasBufferedLine { try await settle() }
                guard let line = try reader.next() else { break }
                if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
                lines.append(reader.lineNumber)
                do {
                    batch.append(try ChangeRecord(wireJSON: line))
                } catch {
                    parseError = ImportError(line: reader.lineNumber, message: error.description)
                    break
                }
            }
            try await settle()
            if let parseError { throw parseError }
            if batch.isEmpty { break }
            summary.lines += batch.count
            let records = batch
            let applier = store.applier
            inFlight = (Task { try await applier.applyRemote(records, from: .recordInstance) }, lines)
            progress(ImportProgress(bytesRead: reader.bytesRead, totalBytes: total, lines: summary.lines))
        }
        try await settle()
        summary.seconds = monotonicSeconds() - started
        summary.head = store.log.head.rawValue
        return summary
    }
}

func monotonicSeconds() -> Double { Double(monotonicNanoseconds()) / 1e9 }

func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
