#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Trilium's change timestamp, `YYYY-MM-DD HH:MM:SS.sssZ` (UTC, millisecond precision).
///
/// Kept as milliseconds since the Unix epoch: for the one accepted format, numeric order equals
/// the string order Trilium's last-writer-wins rule compares, and it costs 8 bytes per entity in
/// the lookup overlay instead of a 24-character string.
public struct UTCDateTime: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var millisecondsSinceEpoch: Int64

    public init(millisecondsSinceEpoch: Int64) {
        self.millisecondsSinceEpoch = millisecondsSinceEpoch
    }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        lhs.millisecondsSinceEpoch < rhs.millisecondsSinceEpoch
    }

    /// The current wall-clock time.
    public static func now() -> UTCDateTime {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UTCDateTime(millisecondsSinceEpoch: Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000)
    }

    /// Parses exactly `YYYY-MM-DD HH:MM:SS.sssZ`; anything else is `nil`.
    public init?(_ text: String) {
        var text = text
        guard let value = text.withUTF8({ UTCDateTime.parse($0) }) else { return nil }
        self = value
    }

    static func parse(_ b: UnsafeBufferPointer<UInt8>) -> UTCDateTime? {
        guard b.count == 24, b[4] == 0x2D, b[7] == 0x2D, b[10] == 0x20, b[13] == 0x3A, b[16] == 0x3A,
            b[19] == 0x2E, b[23] == 0x5A
        else { return nil }
        func digits(_ from: Int, _ count: Int) -> Int? {
            var value = 0
            for i in from..<(from + count) {
                let d = Int(b[i]) - 48
                guard d >= 0, d <= 9 else { return nil }
                value = value * 10 + d
            }
            return value
        }
        guard let year = digits(0, 4), let month = digits(5, 2), let day = digits(8, 2),
            let hour = digits(11, 2), let minute = digits(14, 2), let second = digits(17, 2),
            let milli = digits(20, 3),
            (1...12).contains(month), day >= 1, day <= daysInMonth(year, month),
            hour < 24, minute < 60, second < 60
        else { return nil }
        let days = Int64(daysFromCivil(year, month, day))
        let seconds = days * 86_400 + Int64(hour * 3600 + minute * 60 + second)
        return UTCDateTime(millisecondsSinceEpoch: seconds * 1000 + Int64(milli))
    }

    /// Trilium's text form, e.g. `2023-11-08 16:43:44.204Z`.
    public var description: String {
        let ms = millisecondsSinceEpoch
        var days = ms / 86_400_000
        var rest = ms % 86_400_000
        if rest < 0 {
            rest += 86_400_000
            days -= 1
        }
        let (year, month, day) = civilFromDays(Int(days))
        guard (0...9999).contains(year) else { return wideDescription(year, month, day, Int(rest)) }
        // Written digit by digit into one buffer: this runs for every change a view, a pull page
        // or a WebSocket frame writes, and interpolating padded pieces cost a dozen Strings each.
        return String(unsafeUninitializedCapacity: 24) { out in
            func put(_ value: Int, _ width: Int, at offset: Int) {
                var v = value
                for i in stride(from: offset + width - 1, through: offset, by: -1) {
                    out[i] = UInt8(ascii: "0") + UInt8(v % 10)
                    v /= 10
                }
            }
            put(year, 4, at: 0)
            out[4] = UInt8(ascii: "-")
            put(month, 2, at: 5)
            out[7] = UInt8(ascii: "-")
            put(day, 2, at: 8)
            out[10] = UInt8(ascii: " ")
            put(Int(rest / 3_600_000), 2, at: 11)
            out[13] = UInt8(ascii: ":")
            put(Int(rest / 60_000 % 60), 2, at: 14)
            out[16] = UInt8(ascii: ":")
            put(Int(rest / 1000 % 60), 2, at: 17)
            out[19] = UInt8(ascii: ".")
            put(Int(rest % 1000), 3, at: 20)
            out[23] = UInt8(ascii: "Z")
            return 24
        }
    }

    /// Years outside 0…9999 (never in Trilium's data, but representable).
    private func wideDescription(_ year: Int, _ month: Int, _ day: Int, _ rest: Int) -> String {
        func pad(_ v: Int, _ width: Int) -> String {
            let s = String(v)
            return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2)) \(pad(rest / 3_600_000, 2)):"
            + "\(pad(rest / 60_000 % 60, 2)):\(pad(rest / 1000 % 60, 2)).\(pad(rest % 1000, 3))Z"
    }

    /// One millisecond later.
    public var successor: UTCDateTime { UTCDateTime(millisecondsSinceEpoch: millisecondsSinceEpoch + 1) }
}

private func isLeap(_ y: Int) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }

private func daysInMonth(_ y: Int, _ m: Int) -> Int {
    switch m {
    case 2: isLeap(y) ? 29 : 28
    case 4, 6, 9, 11: 30
    default: 31
    }
}

// Proleptic Gregorian day arithmetic (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms").
private func daysFromCivil(_ year: Int, _ month: Int, _ day: Int) -> Int {
    let y = month <= 2 ? year - 1 : year
    let era = (y >= 0 ? y : y - 399) / 400
    let yoe = y - era * 400
    let mp = (month + 9) % 12
    let doy = (153 * mp + 2) / 5 + day - 1
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
    return era * 146_097 + doe - 719_468
}

private func civilFromDays(_ days: Int) -> (Int, Int, Int) {
    let z = days + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let doe = z - era * 146_097
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
    let mp = (5 * doy + 2) / 153
    let day = doy - (153 * mp + 2) / 5 + 1
    let month = mp < 10 ? mp + 3 : mp - 9
    return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
}
