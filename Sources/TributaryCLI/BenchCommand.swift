import ArgumentParser
import Foundation
import Logging
import Tributary

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Run the benchmark workloads and print one line per figure.",
        discussion: """
            Workloads (shared/docs/benchmarks.md): W1-append (batches of 1000 through the full apply \
            path, one durable commit each, one batch in flight), W2-scan (read everything back in \
            pages of 1000), W3-tail (a producer at a fixed rate, K WebSocket subscribers from the \
            start, latency percentiles), W4-catchup (a fresh node syncs from a full one) and \
            W5-rebuild (all views from the log). Input is loaded before the clock starts. Quote release builds only, as \
            ratios to shared/bench/reference/run.sh run beside it.
            """)

    @Option(help: "Comma-separated workloads: \(Bench.workloads.joined(separator: ","))")
    var workload: String = Bench.workloads.joined(separator: ",")
    @Option(help: "Number of events (generated, or the first N of --input).") var events: Int?
    @Option(help: "A JSON Lines event file (shared/bench/gen.py output).") var input: String?
    @Option(help: "fsync or none.") var durability: DurabilityOption = .fsync
    @Option(help: "Where the scratch data directory is made (use the disk you measure).") var scratch: String = "."
    @Flag(help: "One JSON object per line.") var json = false
    @Flag(
        help:
            "Also run W1 and W2 over HTTP against a node on 127.0.0.1 (POST /api/changes, PUT /api/sync/update, GET /api/changes)."
    )
    var http = false
    @Option(help: "W3-tail cases, rate x subscribers, comma-separated.")
    var tailCases: String = TailCase.standard.map(\.description).joined(separator: ",")
    @Option(help: "Seconds each W3-tail case produces (the first is warm-up).") var tailSeconds: Int = 10

    func validate() throws {
        if let events, events <= 0 { throw ValidationError("--events must be positive") }
        for text in tailCases.split(separator: ",") where TailCase(text) == nil {
            throw ValidationError("--tail-cases: '\(text)' is not RATExSUBSCRIBERS, e.g. 10000x50")
        }
        guard (2...3600).contains(tailSeconds) else { throw ValidationError("--tail-seconds must be 2 to 3600") }
    }

    func run() async throws {
        #if DEBUG
            FileHandleStderr.write("warning: this is a debug build; its figures are not comparable (use -c release)\n")
        #endif
        var bench = Bench(workloads: workload.split(separator: ",").map(String.init), events: events, input: input)
        bench.durability = durability.value
        bench.http = http
        bench.tailCases = tailCases.split(separator: ",").compactMap(TailCase.init)
        bench.tailSeconds = tailSeconds
        try await reporting {
            try await bench.run(scratch: scratch, logger: Logger(label: "tributary.bench")) { result in
                print(json ? result.json : result.line)
                fflush(nil)
            }
        }
    }
}
