import Benchmark
import Foundation
import Logging
import Tributary
import TributaryCore

/// Per-record costs on the write and read paths: decoding a wire record, encoding it, Trilium's
/// content hash, and a 1000-record batch through the apply path into a real log (fsync off, so
/// the figure is CPU, not disk).
let benchmarks: @Sendable () -> Void = {
    let records = SampleEvents().records(1000)
    let lines = records.map { $0.wireJSON() }

    Benchmark("decode wire record ×1000", configuration: .init(metrics: [.wallClock, .throughput, .mallocCountTotal])) { benchmark in
        for line in lines {
            blackHole(try ChangeRecord(wireJSON: line))
        }
    }

    Benchmark("encode wire record ×1000", configuration: .init(metrics: [.wallClock, .throughput])) { benchmark in
        for record in records {
            blackHole(record.wireJSON(id: 1))
        }
    }

    Benchmark("validate record ×1000", configuration: .init(metrics: [.wallClock, .throughput])) { benchmark in
        for record in records {
            try record.validate()
        }
    }

    let notes: [JSONObject] = records.filter { $0.change.entityName == .notes }.compactMap { try? $0.entity?.object() }
    Benchmark("content hash (notes)", configuration: .init(metrics: [.wallClock, .throughput])) { benchmark in
        for row in notes {
            blackHole(try ContentHash.entityHash(.notes, row: row))
        }
    }

    Benchmark(
        "apply 1000 remote changes (fsync off)",
        configuration: .init(metrics: [.wallClock, .throughput], maxIterations: 200)
    ) { benchmark in
        let directory = NSTemporaryDirectory() + "tributary-bench-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try Store(dataDirectory: directory, durability: .none, logger: Logger(label: "bench"))
        defer { store.close() }
        var batch = records
        benchmark.startMeasurement()
        for i in 0..<batch.count { batch[i].change.changeId = RandomID.make() }
        _ = try await store.applier.applyRemote(batch, from: .recordInstance)
        benchmark.stopMeasurement()
    }
}
