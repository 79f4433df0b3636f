import ArgumentParser
import Foundation
import Logging
import Tributary

/// Opens a data directory for reading; works while another process writes it.
func openForReading(_ data: String) throws -> Store {
    try reporting { try Store(dataDirectory: data, readOnly: true, logger: Logger(label: "tributary")) }
}

struct ReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Print the log as JSON Lines in id order (the audit trail).",
        discussion: """
            One line per change: {"id":N,"entityChange":{…,"originInstanceId":…},"entity":{…}}. \
            instanceId is the node this node got the change from; originInstanceId the instanceId \
            the change carried when it arrived. Works while another process writes.
            """)

    @OptionGroup var options: DataOptions
    @Option(help: "First id to print (inclusive).") var from: UInt64?
    @Option(help: "Last id to print (inclusive).") var to: UInt64?
    @Option(help: "Only changes of this entity name (notes, branches, …).") var entity: String?
    @Option(help: "Print at most this many changes.") var limit: Int?

    func validate() throws {
        if let limit, limit < 0 { throw ValidationError("--limit must not be negative") }
        if let from, let to, from > to { throw ValidationError("--from \(from) is after --to \(to)") }
    }

    func run() async throws {
        let store = try openForReading(options.data)
        defer { store.close() }
        _ = try reporting {
            try Replayer(from: from, to: to, entity: entity, limit: limit).run(store: store, to: Output())
        }
    }
}

struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Copy a data directory, while its node runs, into a new directory.",
        discussion: """
            The copy (views, then the log as of one snapshot, then credentials.json) is a data \
            directory of its own: restore by stopping the node and serving from the copy. It keeps \
            the node's instanceId, so it must never run beside the node it was taken from.
            """)

    @OptionGroup var options: DataOptions
    @Argument(help: "Where to write the copy (created; if it exists it must be empty).") var destination: String

    func run() async throws {
        let store = try openForReading(options.data)
        defer { store.close() }
        let progress = ProgressBar()
        try reporting(cleanup: progress.finish) {
            let summary = try store.backup(
                to: destination, phase: { progress.show("copying the \($0)…") },
                waiting: { FileHandleStderr.write("waiting for another backup into \($0) to finish\n") })
            progress.finish()
            let megabytes = { (bytes: Int) in String(format: "%.1f MB", Double(bytes) / 1e6) }
            var parts = ["log \(megabytes(summary.logBytes))"]
            if let views = summary.viewsBytes { parts.append("views \(megabytes(views))") }
            if summary.credentials { parts.append("credentials") }
            print(
                "backed up \(options.data) to \(destination) at head \(summary.head): \(parts.joined(separator: ", "))")
        }
    }
}

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Head id, number of changes, entities by name, disk size.")

    @OptionGroup var options: DataOptions
    @Flag(help: "Print one JSON object.") var json = false

    func run() async throws {
        let store = try openForReading(options.data)
        defer { store.close() }
        try reporting {
            let report = try StatusReport(store: store)
            print(json ? report.json : report.text)
        }
    }
}

struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check every record's checksum, the id order, the indexes, and the views against the log.",
        discussion: """
            The view check digests every view's rows in key order and compares them with a rebuild \
            from the log, up to the view's checkpoint, in a scratch database; a difference names the \
            table and the first differing key. Views never built (an import with --no-views) are \
            noted, not failed. Exits 0 when everything is sound; otherwise lists what is wrong and \
            exits 1.
            """)

    @OptionGroup var options: DataOptions
    @Option(help: "Check from this id (inclusive); default: everything.") var from: UInt64?
    @Flag(help: "Skip the view check (a rebuild of every view into a scratch database).") var noViews = false

    func run() async throws {
        let store = try openForReading(options.data)
        defer { store.close() }
        let bar = ProgressBar()
        let head = store.log.head.rawValue
        let report = try await reporting(cleanup: bar.finish) {
            try await VerifyOutcome(store: store, from: from ?? 0, checkViews: !noViews) { id in
                bar.update(done: Int(id), total: Int(head), unit: "ids")
            }
        }
        bar.finish()
        print(report.text)
        if !report.isSound { throw ExitCode(1) }
    }
}

struct SampleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sample",
        abstract: "Write generated Trilium sync records as JSON Lines (gen.py's mix and sizes).")

    @Option(help: "Number of records.") var events: Int = 1000
    @Option(help: "Random seed.") var seed: UInt64 = 42

    func run() async throws {
        let output = Output()
        for record in SampleEvents(seed: seed).records(events) {
            output.write(record.wireJSON())
            output.write([0x0A])
        }
        output.flush()
    }
}
