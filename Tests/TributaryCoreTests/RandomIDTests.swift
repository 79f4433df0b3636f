import Testing

@testable import TributaryCore

/// Returns the given 64-bit words in order, then repeats the last one.
private struct ScriptedGenerator: RandomNumberGenerator {
    var words: [UInt64]
    var index = 0
    init(_ words: [UInt64]) { self.words = words }
    mutating func next() -> UInt64 {
        defer { index += 1 }
        return words[min(index, words.count - 1)]
    }
}

private let alphabet = Set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)

@Suite("RandomID")
struct RandomIDTests {
    @Test("the default id is 12 alphanumerics")
    func defaultLength() {
        for _ in 0..<100 {
            let id = RandomID.make()
            #expect(id.utf8.count == 12)
            #expect(id.count == 12)
            #expect(id.utf8.allSatisfy(alphabet.contains))
        }
    }

    @Test("the length is honoured", arguments: [0, 1, 7, 10, 12, 20, 63, 64, 200])
    func lengths(length: Int) {
        let id = RandomID.make(length: length)
        #expect(id.utf8.count == length)
        #expect(id.utf8.allSatisfy(alphabet.contains))
    }

    @Test("10,000 ids are distinct and use the whole alphabet")
    func uniqueness() {
        var seen = Set<String>()
        var characters = Set<UInt8>()
        for _ in 0..<10_000 {
            let id = RandomID.make()
            seen.insert(id)
            characters.formUnion(id.utf8)
        }
        #expect(seen.count == 10_000)
        #expect(characters == alphabet)
    }

    /// Ids made in bulk read the random buffer across many refills (4 KB is ~300 ids) and are
    /// as distinct and as spread over the alphabet, position by position, as single ones.
    @Test("ids made in bulk are distinct and use the whole alphabet at every position")
    func bulk() {
        let ids = RandomID.make(count: 10_000)
        #expect(ids.count == 10_000 && Set(ids).count == 10_000)
        #expect(ids.allSatisfy { $0.utf8.count == 12 && RandomID.isAlphanumeric($0) })
        for position in 0..<12 {
            #expect(Set(ids.map { Array($0.utf8)[position] }) == alphabet, "position \(position)")
        }
        #expect(RandomID.make(count: 0).isEmpty)
    }

    @Test("bytes map to the alphabet in order, low byte first")
    func byteMapping() {
        var generator = ScriptedGenerator([0x0706_0504_0302_0100, 0x3D3C_3B3A_2524_0B0A])
        // 0...7 → "01234567"; then 0x0A=10 'A', 0x0B=11 'B', 0x24=36 'a', 0x25=37 'b', 58 'w', 59 'x', 60 'y', 61 'z'
        #expect(RandomID.make(length: 16, using: &generator) == "01234567ABabwxyz")
    }

    @Test("bytes 248...255 are rejected so accepted bytes map uniformly")
    func rejectionSampling() {
        // 0xFF...0xF8 are all rejected; 0xF7 = 247 = 3×62 + 61 → 'z'; 62 → '0'; 124 → '0'; 186 → '0'; 63 → '1'.
        var generator = ScriptedGenerator([0xF8F9_FAFB_FCFD_FEFF, 0xF8F8_3FBA_7C3E_F7FF])
        #expect(RandomID.make(length: 5, using: &generator) == "z0001")
        #expect(generator.index == 2)
    }

    @Test("the same generator sequence gives the same id")
    func deterministic() {
        var a = ScriptedGenerator([0x1234_5678_9ABC_DEF0, 0x0FED_CBA9_8765_4321])
        var b = ScriptedGenerator([0x1234_5678_9ABC_DEF0, 0x0FED_CBA9_8765_4321])
        #expect(RandomID.make(length: 12, using: &a) == RandomID.make(length: 12, using: &b))
    }

    @Test(
        "isAlphanumeric accepts 1-64 ASCII letters and digits only",
        arguments: [
            ("abc", true), ("ABCxyz0189", true), ("Kx9fQ2mLp0Ab", true), ("0", true),
            (String(repeating: "a", count: 64), true), (String(repeating: "a", count: 65), false),
            ("", false), ("a-b", false), ("a_b", false), ("a b", false), ("a.b", false), ("\u{e9}", false),
            ("abc\u{0}", false), ("\u{ff21}", false), ("root_abc", false), ("/", false), (":", false),
            ("@", false), ("[", false), ("`", false), ("{", false),
        ])
    func isAlphanumeric(text: String, expected: Bool) {
        #expect(RandomID.isAlphanumeric(text) == expected)
    }

    @Test("isAlphanumeric honours maxLength")
    func maxLength() {
        #expect(RandomID.isAlphanumeric("abcdefghijkl", maxLength: 12))
        #expect(!RandomID.isAlphanumeric("abcdefghijklm", maxLength: 12))
        #expect(RandomID.isAlphanumeric(String(repeating: "Z", count: 200), maxLength: 200))
    }

    @Test("generated ids pass isAlphanumeric")
    func generatedAreAlphanumeric() {
        for _ in 0..<100 { #expect(RandomID.isAlphanumeric(RandomID.make())) }
    }
}
