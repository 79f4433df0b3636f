/// Capped exponential backoff: `base`, doubled per attempt up to `cap`, each delay scaled by a
/// random factor in `jitter` (so peers that failed together do not retry together).
public struct Backoff: Sendable {
    public let base: Duration
    public let cap: Duration
    public let jitter: ClosedRange<Double>
    private var attempt = 0

    public init(base: Duration = .seconds(1), cap: Duration, jitter: ClosedRange<Double> = 1...1) {
        self.base = base
        self.cap = cap
        self.jitter = jitter
    }

    /// The delay before the next attempt.
    public mutating func next() -> Duration {
        // Doubling stops at the cap, so the shift never overflows however many attempts fail.
        var exponential = base
        for _ in 0..<attempt where exponential < cap { exponential *= 2 }
        attempt += 1
        return min(cap, exponential) * Double.random(in: jitter)
    }

    /// After a success: the next failure waits `base` again.
    public mutating func reset() { attempt = 0 }
}
