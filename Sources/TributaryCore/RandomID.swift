import Glibc

/// Trilium's random identifiers: `randomString(n)` over the 62 alphanumerics, from a
/// cryptographically secure source (changeIds, instanceIds and entity ids are 12 characters).
public enum RandomID {
    static let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)

    /// A new random id of `length` alphanumerics.
    public static func make(length: Int = 12) -> String {
        var generator = SystemRandomNumberGenerator()
        return make(length: length, using: &generator)
    }

    /// `count` new ids, drawn from one buffer of the system's secure random bytes: one system
    /// call per 4 KB instead of one per eight bytes (a batch of 1000 writes needs 1000 changeIds).
    public static func make(count: Int, length: Int = 12) -> [String] {
        var generator = BufferedSystemRandom()
        return (0..<count).map { _ in make(length: length, using: &generator) }
    }

    public static func make(length: Int, using generator: inout some RandomNumberGenerator) -> String {
        String(unsafeUninitializedCapacity: length) { buffer in
            var filled = 0
            while filled < length {
                var word = generator.next()
                for _ in 0..<8 where filled < length {
                    let byte = UInt8(truncatingIfNeeded: word)
                    word >>= 8
                    // Rejection sampling: 248 = 4 × 62, so accepted bytes map uniformly.
                    if byte < 248 {
                        buffer[filled] = alphabet[Int(byte % 62)]
                        filled += 1
                    }
                }
            }
            return length
        }
    }

    /// Whether `text` has the shape of a Trilium random id: 1-64 ASCII alphanumerics.
    public static func isAlphanumeric(_ text: String, maxLength: Int = 64) -> Bool {
        text.utf8.allBytes(maxLength: maxLength) {
            ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122)
        }
    }
}

extension String.UTF8View {
    /// Whether the text is 1…`maxLength` bytes, each satisfying `predicate` (a tight loop over
    /// the contiguous storage native strings have).
    @inline(__always)
    func allBytes(maxLength: Int, _ predicate: (UInt8) -> Bool) -> Bool {
        let result = withContiguousStorageIfAvailable { bytes -> Bool in
            guard !bytes.isEmpty, bytes.count <= maxLength else { return false }
            for b in bytes where !predicate(b) { return false }
            return true
        }
        if let result { return result }
        guard !isEmpty, count <= maxLength else { return false }
        return allSatisfy(predicate)
    }
}

/// The kernel's secure random bytes 4 KB at a time: glibc's `arc4random_buf` is one `getrandom`
/// call, where `SystemRandomNumberGenerator` (and swift-crypto's keys) make one per eight bytes.
struct BufferedSystemRandom: RandomNumberGenerator {
    private var words = [UInt64](repeating: 0, count: 512)
    private var used = 512

    mutating func next() -> UInt64 {
        if used == words.count {
            words.withUnsafeMutableBytes { arc4random_buf($0.baseAddress!, $0.count) }
            used = 0
        }
        used += 1
        return words[used - 1]
    }
}
