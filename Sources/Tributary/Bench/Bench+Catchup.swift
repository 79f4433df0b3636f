import Foundation
import Logging
import Sync
import TributaryCore

/// W4: a node holds the events; a fresh node syncs from it over loopback HTTP until caught up,
/// once compacted (Trilium's pull) and once full-history (every change).
extension Bench {
    func runCatchup(
        _ records: [ChangeRecord], _ bytes: Int, scratch: String, logger: Logger, report: (BenchResult) -> Void
    )
        async throws
    {
        try await withBenchNode(scratch, logger) { base, hub, _ in
            for start in stride(from: 0, to: records.count, by: 10_000) {
                _ = try await hub.store.applier.applyRemote(
                    Array(records[start..<min(records.count, start + 10_000)]), from: .recordInstance)
            }
            // The hub's views and indexes catch up first, so the figure is the catch-up alone (a hub
            // still indexing would take a core and the disk from the sync being measured). So do
            // its content-hash digests, which a serving hub keeps between checks: computed whole
            // during the first variant only, they took a core from that variant's own check.
            try await hub.store.projections?.waitFor(hub.store.log.head, timeout: .seconds(3600))
            try await hub.store.log.flushIndex()
            _ = try await SyncServer(log: hub.store.log, applier: hub.store.applier, digests: hub.digests)
                .entityHashes()
            for fullHistory in [false, true] {
                let directory = scratch + "/bench-catchup-\(UUID().uuidString.prefix(8))"
                defer { try? FileManager.default.removeItem(atPath: directory) }
                let store = try Store(dataDirectory: directory, durability: durability, logger: logger)
                defer { store.close() }
                let engine = try SyncEngine(
                    peer: SyncPeer(url: base, documentSecret: hub.credentials.documentSecret, fullHistory: fullHistory),
                    log: store.log, applier: store.applier, logger: logger)
                defer { engine.close() }
                let started = monotonicSeconds()
                let outcome = await engine.syncOnce()
                let seconds = monotonicSeconds() - started
                if let failure = outcome.failure { throw ImportError(line: 0, message: "W4 sync failed: \(failure)") }
                report(
                    BenchResult(
                        workload: "W4-catchup", variant: fullHistory ? "full-history" : "compacted",
                        events: outcome.pulled,
                        seconds: seconds, bytes: bytes,
                        extra: [
                            ("durability", durability.rawValue),
                            ("seconds_to_caught_up", String(format: "%.3f", seconds)),
                            ("rounds", String(outcome.rounds)),
                        ]))
            }
        }
    }
}
