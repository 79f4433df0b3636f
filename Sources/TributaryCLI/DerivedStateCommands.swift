import ArgumentParser
import Foundation
import Logging
import Tributary
import TributaryCore

// The commands that rebuild what is derived from the log: the views (`rebuild`, `project`) and
// the log's own indexes (`reindex`). Each writes, so each needs the data directory to itself.

/// Opens a data directory for writing (views included).
func openForWriting(_ data: String, limits: ChangeLimits = .init()) throws -> Store {
    try reporting { try Store(dataDirectory: data, limits: limits, logger: Logger(label: "tributary")) }
}

struct RebuildCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rebuild",
        abstract: "Drop views and rebuild them from the log.",
        discussion: "Views: trilium (Trilium's synced tables), entity_changes. Without names, all of them.")

    @OptionGroup var options: DataOptions
    @Argument(help: "Views to rebuild (default: all).") var views: [String] = []

    func run() async throws {
        let store = try openForWriting(options.data)
        defer { store.close() }
        guard let projections = store.projections else { throw fail("no views in \(options.data)") }
        let bar = ProgressBar()
        let started = Date()
        try await reporting(cleanup: bar.finish) {
            try await projections.rebuild(views) { done, target in
                // Past the last change come the indexes and the swap into views.sqlite (about a third
                // of the time at 1M changes): say so rather than sit at 100%.
                let loaded = done >= target
                bar.update(
                    done: Int(done.rawValue), total: Int(target.rawValue), unit: "changes",
                    suffix: loaded ? "— indexing, then swapping into views.sqlite" : "", force: loaded)
            }
        }
        bar.finish()
        let seconds = Date().timeIntervalSince(started)
        let head = store.log.head.rawValue
        print(
            "rebuilt \(views.isEmpty ? "all views" : views.joined(separator: ", ")) from \(head) changes in "
                + "\(String(format: "%.2f", seconds)) s (\(String(format: "%.0f", Double(head) / max(seconds, 1e-9))) changes/s)"
        )
    }
}

struct ProjectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "project",
        abstract: "Bring the views up to the log head (rebuilding any whose schema changed).")

    @OptionGroup var options: DataOptions
    @Option(help: "Changes per projected transaction.") var batchSize: Int = 10_000

    func validate() throws {
        guard (1...1_000_000).contains(batchSize) else { throw ValidationError("--batch-size must be 1-1000000") }
    }

    func run() async throws {
        let store = try openForWriting(options.data)
        defer { store.close() }
        guard store.views != nil else { throw fail("no views in \(options.data)") }
        let projections = store.makeProjections(batchSize: batchSize)
        let bar = ProgressBar()
        try await reporting(cleanup: bar.finish) {
            try await projections.prepare()
            try await projections.catchUp { done, target in
                bar.update(done: Int(done.rawValue), total: Int(target.rawValue), unit: "changes")
            }
        }
        bar.finish()
        let at = projections.checkpoints.map { "\($0.key) @ \($0.value)" }.sorted().joined(separator: ", ")
        print("views up to date: \(at)")
    }
}

struct ReindexCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reindex",
        abstract: "Rebuild the log's indexes (current, changeIds) from its records.",
        discussion: """
            The remedy when verify reports a damaged index entry: the records are read again and
            every index entry rewritten. Records and views are not touched. Needs the data
            directory to itself (stop the server first).
            """)

    @OptionGroup var options: DataOptions

    func run() async throws {
        let bar = ProgressBar()
        let started = Date()
        let indexed = try await reporting(cleanup: bar.finish) {
            try await Store.reindex(dataDirectory: options.data, logger: Logger(label: "tributary")) {
                done, head in
                // Most entries are written after the last record is read (two thirds of the time
                // at 1M changes): say so rather than sit at 100%.
                let read = done >= head
                bar.update(
                    done: Int(done), total: Int(head), unit: "changes",
                    suffix: read ? "— writing the index entries" : "", force: read)
            }
        }
        bar.finish()
        print(
            "indexes rebuilt from \(indexed) changes in \(String(format: "%.2f", Date().timeIntervalSince(started))) s")
    }
}
