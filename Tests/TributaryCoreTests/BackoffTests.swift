import Testing
import TributaryCore

@Suite struct BackoffTests {
    @Test func delaysDoubleFromTheBaseUpToTheCapAndStartOverAfterAReset() {
        var backoff = Backoff(cap: .seconds(30))
        #expect((0..<8).map { _ in backoff.next() } == [1, 2, 4, 8, 16, 30, 30, 30].map { Duration.seconds($0) })
        for _ in 0..<200 { _ = backoff.next() }
        #expect(backoff.next() == .seconds(30))
        backoff.reset()
        #expect(backoff.next() == .seconds(1))
    }

    @Test func jitterScalesEachDelayWithinItsRange() {
        var backoff = Backoff(cap: .seconds(60), jitter: 0.75...1.25)
        for expected in [1, 2, 4, 8, 16, 32, 60, 60] {
            let delay = backoff.next()
            #expect(delay >= .seconds(expected) * 0.75 && delay <= .seconds(expected) * 1.25, "\(delay)")
        }
    }
}
