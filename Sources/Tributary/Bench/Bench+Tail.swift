import Foundation
import HummingbirdWSClient
import Logging
import NIOCore
import Synchronization
import TributaryCore

/// One W3 case: a producer rate and a number of subscribers.
public struct TailCase: Sendable, Equatable, CustomStringConvertible {
    public var rate: Int
    public var subscribers: Int

    public init(rate: Int, subscribers: Int) {
        self.rate = rate
        self.subscribers = subscribers
    }

    /// `10000x50`: 10 000 events/s, 50 subscribers.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "x")
        guard parts.count == 2, let rate = Int(parts[0]), let subscribers = Int(parts[1]), rate > 0, rate <= 1_000_000,
            subscribers > 0, subscribers <= 1000
        else { return nil }
        self.init(rate: rate, subscribers: subscribers)
    }

    public var description: String { "\(rate)x\(subscribers)" }

    /// The cases of `shared/docs/benchmarks.md`.
    public static let standard = [
        TailCase(rate: 10_000, subscribers: 1), TailCase(rate: 10_000, subscribers: 50),
        TailCase(rate: 1000, subscribers: 50),
    ]
}

/// W3: a producer appends at a fixed rate (1 ms ticks, everything due at a tick in one commit,
/// one commit in flight) to a node on 127.0.0.1, while K WebSocket subscribers follow the log
/// from the start. Each event's `changeId` is overwritten just before its append with
/// CLOCK_MONOTONIC nanoseconds in base 36, and each subscriber records now − stamp on arrival.
/// The first second is excluded from the latencies; completeness counts every event.
extension Bench {
    func runTail(
        _ records: [ChangeRecord], _ bytes: Int, scratch: String, logger: Logger, report: (BenchResult) -> Void
    )
        async throws
    {
        for tailCase in tailCases {
            let total = tailCase.rate * tailSeconds
            guard records.count >= total else {
                throw ImportError(
                    line: 0,
                    message:
                        "W3 case \(tailCase) needs \(total) events (rate × \(tailSeconds) s); only \(records.count) loaded (--events)"
                )
            }
            let result = try await runTailCase(tailCase, Array(records.prefix(total)), scratch: scratch, logger: logger)
            report(result)
        }
    }

    private func runTailCase(_ tailCase: TailCase, _ records: [ChangeRecord], scratch: String, logger: Logger)
        async throws -> BenchResult
    {
        var result: BenchResult?
        try await withBenchNode(scratch, logger) { base, node, _ in
            let url = base.replacingOccurrences(of: "http://", with: "ws://") + "/ws?after=0"
            let subscribers = (0..<tailCase.subscribers).map { _ in TailSubscriber(expected: records.count) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for subscriber in subscribers {
                    group.addTask {
                        try await subscriber.follow(url: url, token: node.credentials.apiToken, logger: logger)
                    }
                }
                try await waitUntil(seconds: 60) { subscribers.allSatisfy(\.isReady) }
                let started = monotonicNanoseconds()
                for subscriber in subscribers { subscriber.warmupEnds(at: started + 1_000_000_000) }
                try await produce(records, rate: tailCase.rate, node: node)
                let seconds = Double(monotonicNanoseconds() - started) / 1e9
                // Everything committed is on its way; a subscriber that has not got it in 30 s is not complete.
                try? await waitUntil(seconds: 30) { subscribers.allSatisfy(\.isDone) }
                group.cancelAll()
                let shortfalls = subscribers.compactMap(\.shortfall)
                if let first = shortfalls.first {
                    logger.warning(
                        "W3 subscribers incomplete",
                        metadata: ["bench.incomplete": "\(shortfalls.count)", "bench.first": "\(first)"])
                }
                var latencies = subscribers.flatMap(\.latencies)
                latencies.sort()
                func ms(_ p: Double) -> String {
                    String(format: "%.3f", Double(percentile(latencies, p)) / 1e6)
                }
                result = BenchResult(
                    workload: "W3-tail", variant: "rate\(tailCase.rate)-k\(tailCase.subscribers)",
                    events: records.count, seconds: seconds, bytes: records.reduce(0) { $0 + $1.wireJSON().count },
                    extra: [
                        ("durability", durability.rawValue), ("rate", String(tailCase.rate)),
                        ("subscribers", String(tailCase.subscribers)), ("p50_ms", ms(50)), ("p99_ms", ms(99)),
                        ("p999_ms", ms(99.9)),
                        ("max_ms", String(format: "%.3f", Double(latencies.last ?? 0) / 1e6)),
                        ("samples", String(latencies.count)),
                        ("complete_subs", String(subscribers.filter(\.isComplete).count)),
                    ])
            }
        }
        return result!
    }

    /// Appends `records` at `rate` per second: at each 1 ms tick, whatever is due, stamped, in one
    /// commit. One commit is in flight, so a slow commit makes the next one larger, never reorders.
    private func produce(_ records: [ChangeRecord], rate: Int, node: Node) async throws {
        let clock = ContinuousClock()
        let origin = clock.now
        var sent = 0
        var tick = 0
        var lastStamp: UInt64 = 0
        while sent < records.count {
            tick += 1
            try await Task.sleep(until: origin + .milliseconds(tick), tolerance: .zero, clock: clock)
            let elapsed = origin.duration(to: clock.now)
            let elapsedMicros =
                elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000
            let due = min(records.count, Int(Int64(rate) * elapsedMicros / 1_000_000))
            guard due > sent else { continue }
            var batch = Array(records[sent..<due])
            for i in batch.indices {
                // Distinct stamps: the changeId is also the key of the changeIds index.
                lastStamp = max(monotonicNanoseconds(), lastStamp + 1)
                batch[i].change.changeId = TailStamp.encode(lastStamp)
            }
            let report = try await node.store.applier.applyRemote(batch, from: .recordInstance)
            guard report.applied == batch.count else {
                throw ImportError(line: 0, message: "W3: \(batch.count - report.applied) events were not applied")
            }
            sent = due
        }
    }

    private func waitUntil(seconds: Double, _ condition: () -> Bool) async throws {
        let deadline = monotonicSeconds() + seconds
        while !condition() {
            guard monotonicSeconds() < deadline else {
                throw ImportError(line: 0, message: "W3: subscribers did not get ready in \(Int(seconds)) s")
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }
}

/// One W3 subscriber: a raw WebSocket that checks ids arrive once and in order and records the
/// latency of each event past the warm-up.
final class TailSubscriber: Sendable {
    private struct State {
        var ready = false
        var next: UInt64 = 1
        var inOrder = true
        /// The first id that broke the order, and the one expected then.
        var firstBreak: (expected: UInt64, got: UInt64)?
        var warmupEnd = UInt64.max
        var latencies: [UInt64] = []
    }

    private let state = Mutex(State())
    let expected: Int

    init(expected: Int) {
        self.expected = expected
        state.withLock { $0.latencies.reserveCapacity(expected) }
    }

    var isReady: Bool { state.withLock { $0.ready } }
    var isDone: Bool { state.withLock { !$0.inOrder || $0.next > UInt64(expected) } }
    /// Every event, in order, once.
    var isComplete: Bool { state.withLock { $0.inOrder && $0.next == UInt64(expected) + 1 } }
    var latencies: [UInt64] { state.withLock { $0.latencies } }
    /// Why the subscriber is not complete, if it is not.
    var shortfall: String? {
        state.withLock { s in
            if let b = s.firstBreak { return "expected id \(b.expected), got \(b.got)" }
            if s.next <= UInt64(expected) { return "stopped at id \(s.next - 1) of \(expected)" }
            return nil
        }
    }

    func warmupEnds(at nanoseconds: UInt64) { state.withLock { $0.warmupEnd = nanoseconds } }

    func follow(url: String, token: String, logger: Logger) async throws {
        var configuration = WebSocketClientConfiguration()
        configuration.maxFrameSize = 64 << 20
        configuration.additionalHeaders = [.authorization: "Bearer \(token)"]
        try await WebSocketClient.connect(url: url, configuration: configuration, logger: logger) { inbound, _, _ in
            // Raw frames, reassembled: a subscriber that validated and copied every message into a
            // String would spend the machine's two cores on itself rather than on the server.
            var message = ByteBuffer()
            for try await frame in inbound {
                var data = frame.data
                message.writeBuffer(&data)
                guard frame.fin else { continue }
                defer { message.clear() }
                let arrived = monotonicNanoseconds()
                let events = message.withUnsafeReadableBytes { TailStamp.scan($0) }
                let caughtUp = message.readableBytesView.starts(with: #"{"type":"caught-up""#.utf8)
                let done = self.state.withLock { s -> Bool in
                    if caughtUp { s.ready = true }
                    for (id, stamp) in events {
                        if id != s.next, s.inOrder {
                            s.inOrder = false
                            s.firstBreak = (s.next, id)
                        }
                        s.next = id + 1
                        if stamp >= s.warmupEnd { s.latencies.append(arrived &- stamp) }
                    }
                    return !s.inOrder || s.next > UInt64(self.expected)
                }
                if done { return }
            }
        }
    }
}

/// The W3 latency stamp in a 12-character `changeId`, and the scan of a `frontend-update` frame
/// for each element's `id` and stamp without decoding the entities.
enum TailStamp {
    static let digits = Array("0123456789abcdefghijklmnopqrstuvwxyz".utf8)

    static func encode(_ value: UInt64) -> String {
        var bytes = [UInt8](repeating: UInt8(ascii: "0"), count: 12)
        var v = value
        for i in (0..<12).reversed() {
            bytes[i] = digits[Int(v % 36)]
            v /= 36
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func decode(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64? {
        var value: UInt64 = 0
        for byte in bytes {
            let digit: UInt64
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt64(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): digit = UInt64(byte - UInt8(ascii: "a")) + 10
            default: return nil
            }
            value = value &* 36 &+ digit
        }
        return value
    }

    /// `(id, stamp)` of each element of `data.entityChanges`, sorted by id (a frame is in
    /// referential order). Keys count at the elements' own level only, so an entity's fields never
    /// do; strings are skipped with memchr, since nearly every byte of a frame is inside one.
    static func scan(_ p: UnsafeRawBufferPointer) -> [(UInt64, UInt64)] {
        guard let base = p.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return [] }
        let n = p.count
        let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\")
        var found: [(UInt64, UInt64)] = []
        var depth = 0
        var id: UInt64?
        var stamp: UInt64?
        var i = 0
        /// From the opening quote at `i`: leaves `i` on the closing quote, returns the contents.
        func skipString() -> Range<Int> {
            let start = i + 1
            var from = start
            while from < n, let hit = memchr(base + from, Int32(quote), n - from) {
                let at = base.distance(to: hit.assumingMemoryBound(to: UInt8.self))
                var slashes = 0
                while at - slashes - 1 >= start, base[at - slashes - 1] == backslash { slashes += 1 }
                if slashes % 2 == 0 {
                    i = at
                    return start..<at
                }
                from = at + 1
            }
            i = n
            return start..<n
        }
        func isKey(_ key: Range<Int>, _ name: StaticString) -> Bool {
            key.count == name.utf8CodeUnitCount && memcmp(base + key.lowerBound, name.utf8Start, key.count) == 0
        }
        while i < n {
            switch base[i] {
            case quote:
                let key = skipString()
                guard depth == 4, i + 1 < n, base[i + 1] == UInt8(ascii: ":") else { break }
                i += 1
                if isKey(key, "id") {
                    i += 1
                    var value: UInt64 = 0
                    while i < n, base[i] &- UInt8(ascii: "0") < 10 {
                        value = value &* 10 &+ UInt64(base[i] &- UInt8(ascii: "0"))
                        i += 1
                    }
                    id = value
                    continue
                }
                if isKey(key, "changeId"), i + 1 < n, base[i + 1] == quote {
                    i += 1
                    stamp = decode(
                        UnsafeBufferPointer(rebasing: UnsafeBufferPointer(start: base, count: n)[skipString()]))
                }
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                if depth == 4, let elementId = id {
                    found.append((elementId, stamp ?? 0))
                    id = nil
                    stamp = nil
                }
                depth -= 1
            default:
                break
            }
            i += 1
        }
        found.sort { $0.0 < $1.0 }
        return found
    }
}
