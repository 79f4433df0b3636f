import CCRC32C
import Testing
import Tributary

/// The records' CRC-32C: the SSE4.2 path and the portable one (other CPUs) must both give the
/// standard checksum for every length and alignment, since a difference reads as a damaged record.
@Suite struct ChecksumTests {
    private func crc(_ bytes: [UInt8], fast: Bool = true) -> UInt32 {
        bytes.withUnsafeBytes {
            fast
                ? tributary_crc32c(0, $0.baseAddress, $0.count) : tributary_crc32c_portable(0, $0.baseAddress, $0.count)
        }
    }

    /// RFC 3720 (iSCSI) appendix B.4 and the usual check value.
    @Test func standardVectors() {
        for fast in [true, false] {
            #expect(crc(Array("123456789".utf8), fast: fast) == 0xE306_9283)
            #expect(crc([UInt8](repeating: 0, count: 32), fast: fast) == 0x8A91_36AA)
            #expect(crc([UInt8](repeating: 0xFF, count: 32), fast: fast) == 0x62A8_AB43)
            #expect(crc(Array(0..<32), fast: fast) == 0x46DD_794E)
            #expect(crc(Array((0..<32).reversed()), fast: fast) == 0x113F_DB5C)
        }
    }

    /// Every length up to 13 000 bytes at every alignment, and a checksum continued from an
    /// earlier one.
    @Test func theFastPathEqualsThePortableOneEverywhere() {
        var rng = SplitMix64(seed: 7)
        let data = (0..<13_100).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        data.withUnsafeBytes { all in
            var mismatches: [String] = []
            for offset in 0..<8 {
                var length = 0
                while length <= 13_000 {
                    defer { length += length < 4_200 ? 1 : 61 }
                    let p = all.baseAddress! + offset
                    let fast = tributary_crc32c(0, p, length)
                    if fast != tributary_crc32c_portable(0, p, length) { mismatches.append("\(offset)+\(length)") }
                    let split = length / 3
                    if tributary_crc32c(tributary_crc32c(0, p, split), p + split, length - split) != fast {
                        mismatches.append("\(offset)+\(length) continued")
                    }
                }
            }
            #expect(mismatches.isEmpty, "\(mismatches.prefix(10))")
        }
    }
}
