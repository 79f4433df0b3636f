import Glibc

/// Skipping inside JSON already known to be valid and compact: an `EntityRow`'s bytes, which
/// every initialiser checks or produces. Walking a row for one member (the primary key in
/// validation, the hashed fields, the projected columns) skips every other member; checking each
/// skipped byte again made the primary-key walk 12 % of the in-process append's CPU, much of it
/// in the 4 KB contents of blobs. These find each string's end with `memchr` and do not validate. They
/// stay memory-safe on any input; on invalid input they only end in the wrong place.
extension JSONParser {
    /// Moves past the string whose opening quote is at `position`; true if it holds an escape.
    mutating func skipTrustedString() -> Bool {
        let contentStart = position + 1
        var from = contentStart
        while let quote = find(UInt8(ascii: "\""), from: from) {
            var backslashes = 0
            while quote - backslashes - 1 >= contentStart, bytes[quote - backslashes - 1] == UInt8(ascii: "\\") {
                backslashes += 1
            }
            if backslashes % 2 == 0 {
                position = quote + 1
                return find(UInt8(ascii: "\\"), from: contentStart, to: quote) != nil
            }
            from = quote + 1
        }
        position = bytes.count
        return false
    }

    /// Moves past the value at `position`.
    mutating func skipTrustedValue() {
        guard position < bytes.count else { return }
        switch bytes[position] {
        case UInt8(ascii: "\""):
            _ = skipTrustedString()
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            var depth = 0
            while position < bytes.count {
                switch bytes[position] {
                case UInt8(ascii: "\""):
                    _ = skipTrustedString()
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0 {
                        position += 1
                        return
                    }
                default: break
                }
                position += 1
            }
        default:
            // A number or a literal: it ends where the member or element does.
            while position < bytes.count {
                switch bytes[position] {
                case UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"): return
                default: position += 1
                }
            }
        }
    }

    /// Moves past the string at `position` and returns its content (decoded if it has escapes).
    mutating func readTrustedString() throws(CoreError) -> StringContent {
        let start = position
        let escaped = skipTrustedString()
        guard escaped else { return .slice((start + 1)..<max(start + 1, position - 1)) }
        position = start
        return .decoded(Array(try parseString().utf8))
    }

    /// The index of the first `byte` in `from..<to` (default: to the end).
    private func find(_ byte: UInt8, from: Int, to: Int? = nil) -> Int? {
        let end = min(to ?? bytes.count, bytes.count)
        guard from < end, let base = bytes.baseAddress,
            let hit = memchr(base + from, Int32(byte), end - from)
        else { return nil }
        return base.distance(to: UnsafeRawPointer(hit))
    }
}
