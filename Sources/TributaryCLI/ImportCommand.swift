import ArgumentParser
import Foundation
import Logging
import Tributary

struct ImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Apply JSON Lines of Trilium sync records as remote changes.",
        discussion: """
            Each line is {"entityChange":{…},"entity":{…}} (the format of shared/bench/gen.py and \
            of PUT /api/sync/update's entities). Records go through the apply path in batches: \
            duplicates (known changeId) are skipped, conflicts follow Trilium's last-writer-wins \
            rule, and each record's own instanceId counts as its sender. A bad line stops the \
            import with its line number; earlier batches stay applied, nothing of its batch is.
            """)

    @OptionGroup var options: DataOptions

    @Argument(help: "The file to import, or - for standard input.")
    var file: String

    @Option(help: "Records per batch (one durable commit each).")
    var batchSize: Int = 1000

    @Option(
        help:
            "fsync (default): every batch is on disk before the next; none: faster, may lose the last batches on power failure."
    )
    var durability: DurabilityOption = .fsync

    @Flag(help: "Leave the views for later (`tributary project`) instead of bringing them up to date.")
    var noViews = false

    @Flag(help: .hidden)
    var printAcks = false

    func validate() throws {
        guard (1...100_000).contains(batchSize) else { throw ValidationError("--batch-size must be 1-100000") }
    }

    func run() async throws {
        let logger = Logger(label: "tributary.import")
        let store = try reporting {
            try Store(dataDirectory: options.data, durability: durability.value, logger: logger)
        }
        defer { store.close() }
        let bar = ProgressBar()
        let printAcks = self.printAcks
        do {
            let summary = try await Importer(batchSize: batchSize).run(
                path: file, into: store,
                progress: { p in
                    bar.update(done: p.bytesRead, total: p.totalBytes, unit: "MB", suffix: "\(p.lines) records")
                },
                acknowledged: { range, line in
                    guard printAcks else { return }
                    let ids = range.map { "\($0.lowerBound) \($0.upperBound)" } ?? "- -"
                    print("ack \(ids) \(line)")
                    fflush(nil)
                })
            bar.finish()
            if bar.enabled { FileHandleStderr.write("indexing…") }
            try await store.log.flushIndex()
            bar.finish()
            if !noViews, let projections = store.projections {
                try await projections.catchUp { done, target in
                    bar.update(
                        done: Int(done.rawValue), total: Int(target.rawValue), unit: "changes",
                        suffix: "projecting views")
                }
                bar.finish()
            }
            let r = summary.report
            print(
                "imported \(summary.lines) records in \(String(format: "%.2f", summary.seconds)) s "
                    + "(\(String(format: "%.0f", Double(summary.lines) / max(summary.seconds, 1e-9))) records/s): "
                    + "applied \(r.applied), duplicates skipped \(r.duplicates), conflicts lost \(r.conflictsLost) "
                    + "(local versions re-issued \(r.reissued)), ignored \(r.ignored); head id \(summary.head)")
        } catch let error as ImportError {
            bar.finish()
            throw fail("\(file): \(error)")
        } catch {
            bar.finish()
            throw fail("\(error)")
        }
    }
}
