import Foundation
import Glibc
import Synchronization

/// A one-line progress display on standard error, shown only on a terminal and redrawn at most
/// ten times a second.
final class ProgressBar: Sendable {
    let enabled: Bool
    private let lastDraw = Mutex(0.0)
    private let started: Double

    init(enabled: Bool = isatty(2) != 0) {
        self.enabled = enabled
        started = now()
    }

    /// Redraws with `done` of `total` (unknown total: a counter) and a free-form suffix.
    func update(done: Int, total: Int?, unit: String, suffix: String = "", force: Bool = false) {
        guard enabled else { return }
        let t = now()
        let due = lastDraw.withLock { last -> Bool in
            guard force || t - last >= 0.1 else { return false }
            last = t
            return true
        }
        guard due else { return }
        let elapsed = max(t - started, 1e-9)
        var line: String
        if let total, total > 0 {
            let fraction = min(1, Double(done) / Double(total))
            let width = 30
            let filled = Int(fraction * Double(width))
            line = "[" + String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled) + "] "
            line += String(format: "%3.0f%% ", fraction * 100)
            if fraction > 0.01 && fraction < 1 {
                line += String(format: "eta %.0fs ", elapsed / fraction - elapsed)
            }
        } else {
            line = ""
        }
        line += String(format: "%.1f %@/s ", Double(done) / elapsed / (unit == "MB" ? 1e6 : 1), unit) + suffix
        FileHandleStderr.write("\r\u{1B}[K" + line)
    }

    /// Shows `text` alone, for work whose progress cannot be measured.
    func show(_ text: String) {
        guard enabled else { return }
        FileHandleStderr.write("\r\u{1B}[K" + text)
    }

    func finish() {
        guard enabled else { return }
        FileHandleStderr.write("\r\u{1B}[K")
    }
}

private func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
