import Foundation
import Testing

@testable import TributaryCore

// Every expected hash below was computed independently with Python (hashlib.sha1,
// unicodedata.normalize("NFC"), base64) from Trilium's rule, and the JavaScript `String(value)`
// forms were cross-checked with node. `preimage` is the "|"-joined string Trilium hashes.

private let utc = "2023-11-08 16:43:44.204Z"
private let local = "2023-11-08 17:43:44.204+0100"

private let note: JSONObject = [
    "noteId": .string("Kx9fQ2mLp0Ab"), "title": .string("Meeting notes"), "isProtected": .number("0"),
    "type": .string("text"), "mime": .string("text/html"), "blobId": .string("aB3dE5gH7jK9mN1pQ3sT"),
    "isDeleted": .number("0"), "deleteId": .null, "dateCreated": .string(local), "dateModified": .string(local),
    "utcDateCreated": .string(utc), "utcDateModified": .string(utc),
]

private let branch: JSONObject = [
    "branchId": .string("root_Kx9fQ2mLp0Ab"), "noteId": .string("Kx9fQ2mLp0Ab"), "parentNoteId": .string("root"),
    "notePosition": .number("10"), "prefix": .null, "isExpanded": .number("0"), "isDeleted": .number("0"),
    "deleteId": .null, "utcDateModified": .string(utc),
]

private let attribute: JSONObject = [
    "attributeId": .string("At7rIbUtE0x1"), "noteId": .string("Kx9fQ2mLp0Ab"), "type": .string("label"),
    "name": .string("color"), "value": .string("red"), "position": .number("10"), "utcDateModified": .string(utc),
    "isDeleted": .number("0"), "deleteId": .null, "isInheritable": .number("0"),
]

private let revision: JSONObject = [
    "revisionId": .string("Rev1sion0001"), "noteId": .string("Kx9fQ2mLp0Ab"), "type": .string("text"),
    "mime": .string("text/html"), "title": .string("Draft"), "isProtected": .number("0"),
    "blobId": .string("zZ9yY8xX7wW6vV5uU4tT"), "utcDateLastEdited": .string(utc), "utcDateCreated": .string(utc),
    "utcDateModified": .string("2023-11-08 16:45:00.000Z"), "dateLastEdited": .string(local),
    "dateCreated": .string(local),
]

private let attachment: JSONObject = [
    "attachmentId": .string("AttAch000001"), "ownerId": .string("Kx9fQ2mLp0Ab"), "role": .string("image"),
    "mime": .string("image/png"), "title": .string("diagram.png"), "isProtected": .number("0"),
    "position": .number("10"), "blobId": .string("bL0bbL0bbL0bbL0bbL0b"), "dateModified": .string(local),
    "utcDateModified": .string(utc), "utcDateScheduledForErasureSince": .null, "isDeleted": .number("0"),
    "deleteId": .null,
]

private let option: JSONObject = [
    "name": .string("theme"), "value": .string("dark"), "isSynced": .number("1"), "utcDateModified": .string(utc),
]

private let etapiToken: JSONObject = [
    "etapiTokenId": .string("EtApItOkEn01"), "name": .string("backup script"), "tokenHash": .string("hAsH/+=="),
    "utcDateCreated": .string(utc), "utcDateModified": .string(utc), "isDeleted": .number("0"),
]

/// `base` with members replaced in place (`nil` removes the member, as if the column were absent).
private func with(_ base: JSONObject, _ changes: KeyValuePairs<String, JSONValue?>) -> JSONObject {
    var row = base
    for (key, value) in changes { row[key] = value }
    return row
}

struct HashVector: Sendable, CustomTestStringConvertible {
    var label: String
    var name: EntityName
    var row: JSONObject
    var preimage: String
    var expected: String

    init(_ label: String, _ name: EntityName, _ row: JSONObject, _ preimage: String, _ expected: String) {
        self.label = label
        self.name = name
        self.row = row
        self.preimage = preimage
        self.expected = expected
    }

    var testDescription: String { label }
}

private let notePrefix = "|Kx9fQ2mLp0Ab|"
private let noteTail = "|text|text/html|aB3dE5gH7jK9mN1pQ3sT"

let entityHashVectors: [HashVector] = [
    // notes
    HashVector("note plain", .notes, note, notePrefix + "Meeting notes|false" + noteTail, "1SegZ6/dVQ"),
    HashVector(
        "note isProtected 1", .notes, with(note, ["isProtected": .number("1")]),
        notePrefix + "Meeting notes|true" + noteTail, "Gw98duVe2r"),
    HashVector(
        "note isProtected true", .notes, with(note, ["isProtected": .bool(true)]),
        notePrefix + "Meeting notes|true" + noteTail, "Gw98duVe2r"),
    HashVector(
        "note isProtected false", .notes, with(note, ["isProtected": .bool(false)]),
        notePrefix + "Meeting notes|false" + noteTail, "1SegZ6/dVQ"),
    HashVector(
        "note title precomposed", .notes, with(note, ["title": .string("Caf\u{e9} cr\u{e8}me")]),
        notePrefix + "Caf\u{e9} cr\u{e8}me|false" + noteTail, "Mp+VTSJdLw"),
    HashVector(
        "note title decomposed (NFC makes it equal)", .notes,
        with(note, ["title": .string("Cafe\u{301} cre\u{300}me")]),
        notePrefix + "Cafe\u{301} cre\u{300}me|false" + noteTail, "Mp+VTSJdLw"),
    HashVector(
        "note title Hangul jamo", .notes,
        with(note, ["title": .string("\u{1112}\u{1161}\u{11ab}\u{1100}\u{1173}\u{11af}")]),
        notePrefix + "\u{1112}\u{1161}\u{11ab}\u{1100}\u{1173}\u{11af}|false" + noteTail, "8BLKFjcpY3"),
    HashVector(
        "note title Hangul syllables", .notes, with(note, ["title": .string("\u{d55c}\u{ae00}")]),
        notePrefix + "\u{d55c}\u{ae00}|false" + noteTail, "8BLKFjcpY3"),
    HashVector(
        "note title ohm and angstrom signs (singleton decompositions)", .notes,
        with(note, ["title": .string("1 \u{2126} and \u{212b}")]),
        notePrefix + "1 \u{2126} and \u{212b}|false" + noteTail, "KfFA4j+WkP"),
    HashVector(
        "note title with emoji, CJK and a pipe", .notes,
        with(note, ["title": .string("a|b \u{1f600} \u{65e5}\u{672c}")]),
        notePrefix + "a|b \u{1f600} \u{65e5}\u{672c}|false" + noteTail, "XPF98n16TX"),
    HashVector(
        "note blobId null", .notes, with(note, ["blobId": .null]),
        notePrefix + "Meeting notes|false|text|text/html|null", "nquVv1cemF"),
    HashVector(
        "note blobId missing", .notes, with(note, ["blobId": nil]),
        notePrefix + "Meeting notes|false|text|text/html|undefined", "II+I5qz92u"),
    HashVector(
        "note soft-deleted (isDeleted 1)", .notes,
        with(note, ["isDeleted": .number("1"), "deleteId": .string("1234567890ab")]),
        notePrefix + "Meeting notes|false" + noteTail + "|deleted", "a4huFtYSvP"),
    HashVector(
        "note soft-deleted (isDeleted true)", .notes, with(note, ["isDeleted": .bool(true)]),
        notePrefix + "Meeting notes|false" + noteTail + "|deleted", "a4huFtYSvP"),
    HashVector(
        "note isDeleted missing", .notes, with(note, ["isDeleted": nil]),
        notePrefix + "Meeting notes|false" + noteTail, "1SegZ6/dVQ"),
    HashVector(
        "note empty title", .notes, with(note, ["title": .string("")]),
        notePrefix + "|false" + noteTail, "1X3OfYF2Lr"),
    HashVector(
        "note numeric title", .notes, with(note, ["title": .number("42")]),
        notePrefix + "42|false" + noteTail, "dvnfyPn1aP"),

    // branches
    HashVector(
        "branch prefix null", .branches, branch, "|root_Kx9fQ2mLp0Ab|Kx9fQ2mLp0Ab|root|null", "llgoglMNfW"),
    HashVector(
        "branch prefix text", .branches, with(branch, ["prefix": .string("Archiv \u{fc}")]),
        "|root_Kx9fQ2mLp0Ab|Kx9fQ2mLp0Ab|root|Archiv \u{fc}", "Rg73J7vfaJ"),
    HashVector(
        "branch notePosition and isExpanded are not hashed", .branches,
        with(branch, ["notePosition": .number("999"), "isExpanded": .number("1")]),
        "|root_Kx9fQ2mLp0Ab|Kx9fQ2mLp0Ab|root|null", "llgoglMNfW"),
    HashVector(
        "branch soft-deleted", .branches,
        with(branch, ["isDeleted": .number("1"), "deleteId": .string("abcdefabcdef")]),
        "|root_Kx9fQ2mLp0Ab|Kx9fQ2mLp0Ab|root|null|deleted", "ctSaQICQ8I"),
    HashVector(
        "branch prefix missing", .branches, with(branch, ["prefix": nil]),
        "|root_Kx9fQ2mLp0Ab|Kx9fQ2mLp0Ab|root|undefined", "MCdwhiDaYo"),

    // attributes
    HashVector(
        "attribute plain", .attributes, attribute, "|At7rIbUtE0x1|Kx9fQ2mLp0Ab|label|color|red|false", "85l8uC55B5"),
    HashVector(
        "attribute isInheritable 1", .attributes, with(attribute, ["isInheritable": .number("1")]),
        "|At7rIbUtE0x1|Kx9fQ2mLp0Ab|label|color|red|true", "nyKOXngcE7"),
    HashVector(
        "attribute isInheritable true", .attributes, with(attribute, ["isInheritable": .bool(true)]),
        "|At7rIbUtE0x1|Kx9fQ2mLp0Ab|label|color|red|true", "nyKOXngcE7"),
    HashVector(
        "attribute isInheritable null", .attributes, with(attribute, ["isInheritable": .null]),
        "|At7rIbUtE0x1|Kx9fQ2mLp0Ab|label|color|red|false", "85l8uC55B5"),
    HashVector(
        "attribute isInheritable missing", .attributes, with(attribute, ["isInheritable": nil]),
        "|At7rIbUtE0x1|Kx9fQ2mLp0Ab|label|color|red|false", "85l8uC55B5"),
    HashVector(
        "attribute value decomposed", .attributes, with(attribute, ["value": .string("n\u{303}o\u{308}")]),
        "|At7rIbUtE0x1|Kx9fQ2mLp0Ab|label|color|n\u{303}o\u{308}|false", "ouSDDumG02"),
    HashVector(
        "attribute value precomposed", .attributes, with(attribute, ["value": .string("\u{f1}\u{f6}")]),
        "|At7rIbUtE0x1|Kx9fQ2mLp0Ab|label|color|\u{f1}\u{f6}|false", "ouSDDumG02"),
    HashVector(
        "attribute relation soft-deleted", .attributes,
        with(
            attribute,
            [
                "type": .string("relation"), "name": .string("template"), "value": .string("root"),
                "isDeleted": .number("1"),
            ]),
        "|At7rIbUtE0x1|Kx9fQ2mLp0Ab|relation|template|root|false|deleted", "nWlR6Epgpp"),
    // BAttribute holds `row.value || ""`, so empty, null and missing values all hash as "".
    HashVector(
        "attribute value empty", .attributes, with(attribute, ["value": .string("")]),
        "|At7rIbUtE0x1|Kx9fQ2mLp0Ab|label|color||false", "EzJTp62v9d"),
    HashVector(
        "attribute value null", .attributes, with(attribute, ["value": .null]),
        "|At7rIbUtE0x1|Kx9fQ2mLp0Ab|label|color||false", "EzJTp62v9d"),

    // revisions
    HashVector(
        "revision plain", .revisions, revision,
        "|Rev1sion0001|Kx9fQ2mLp0Ab|Draft|false|\(local)|\(local)|\(utc)|\(utc)|2023-11-08 16:45:00.000Z"
            + "|zZ9yY8xX7wW6vV5uU4tT", "6ifwTRT+C2"),
    HashVector(
        "revision protected", .revisions,
        with(revision, ["isProtected": .number("1"), "title": .string("ciphertext+/==")]),
        "|Rev1sion0001|Kx9fQ2mLp0Ab|ciphertext+/==|true|\(local)|\(local)|\(utc)|\(utc)|2023-11-08 16:45:00.000Z"
            + "|zZ9yY8xX7wW6vV5uU4tT", "ZU4I/vUE12"),
    HashVector(
        "revision blobId null", .revisions, with(revision, ["blobId": .null]),
        "|Rev1sion0001|Kx9fQ2mLp0Ab|Draft|false|\(local)|\(local)|\(utc)|\(utc)|2023-11-08 16:45:00.000Z|null",
        "Lnpfuf069d"),

    // attachments
    HashVector(
        "attachment plain", .attachments, attachment,
        "|AttAch000001|Kx9fQ2mLp0Ab|image|image/png|diagram.png|bL0bbL0bbL0bbL0bbL0b|null", "r8eaiUqb63"),
    HashVector(
        "attachment scheduled for erasure", .attachments,
        with(attachment, ["utcDateScheduledForErasureSince": .string("2023-12-01 00:00:00.000Z")]),
        "|AttAch000001|Kx9fQ2mLp0Ab|image|image/png|diagram.png|bL0bbL0bbL0bbL0bbL0b|2023-12-01 00:00:00.000Z",
        "TnhrlOlt0R"),
    HashVector(
        "attachment soft-deleted", .attachments, with(attachment, ["isDeleted": .number("1")]),
        "|AttAch000001|Kx9fQ2mLp0Ab|image|image/png|diagram.png|bL0bbL0bbL0bbL0bbL0b|null|deleted", "JXWN5wpdqt"),
    HashVector(
        "attachment isProtected and position are not hashed", .attachments,
        with(attachment, ["isProtected": .number("1"), "position": .number("20")]),
        "|AttAch000001|Kx9fQ2mLp0Ab|image|image/png|diagram.png|bL0bbL0bbL0bbL0bbL0b|null", "r8eaiUqb63"),

    // options
    HashVector("option text value", .options, option, "|theme|dark", "8AAv+L48DM"),
    HashVector("option value null", .options, with(option, ["value": .null]), "|theme|null", "iKUdfdQt34"),
    HashVector("option value true", .options, with(option, ["value": .bool(true)]), "|theme|true", "HRzsLTfhYA"),
    HashVector(
        "option value array", .options,
        with(
            option,
            ["value": .array([.string("a"), .number("1"), .null, .array([.string("b"), .null]), .bool(true)])]),
        "|theme|a,1,,b,,true", "S3kpjUF1Wa"),
    HashVector(
        "option value object", .options, with(option, ["value": .object(["k": .string("v")])]),
        "|theme|[object Object]", "CgA2cCtHfl"),
    HashVector("option value missing", .options, with(option, ["value": nil]), "|theme|undefined", "X3vjjMLMPG"),

    // etapi_tokens: isDeleted is both a hashed boolean and the deleted suffix
    HashVector(
        "etapi token", .etapiTokens, etapiToken,
        "|EtApItOkEn01|backup script|hAsH/+==|\(utc)|\(utc)|false", "3+ejXZudfF"),
    HashVector(
        "etapi token deleted (1)", .etapiTokens, with(etapiToken, ["isDeleted": .number("1")]),
        "|EtApItOkEn01|backup script|hAsH/+==|\(utc)|\(utc)|true|deleted", "/746258Crx"),
    HashVector(
        "etapi token deleted (true)", .etapiTokens, with(etapiToken, ["isDeleted": .bool(true)]),
        "|EtApItOkEn01|backup script|hAsH/+==|\(utc)|\(utc)|true|deleted", "/746258Crx"),
]

/// (JSON number literal, JavaScript `String(JSON.parse(literal))`, hash of an options row with it
/// as value).
let numberVectors: [(literal: String, javaScript: String, hash: String)] = [
    ("1.5", "1.5", "0rLCepkdkA"),
    ("100", "100", "Lz7Iy3HL/3"),
    ("1e21", "1e+21", "m0aMUzxMzp"),
    ("0.000001", "0.000001", "JbQeRl2U5D"),
    ("1e-7", "1e-7", "f199WLrH6y"),
    ("1E2", "100", "Lz7Iy3HL/3"),
    ("-0", "0", "3S8NI78P+7"),
    ("0", "0", "3S8NI78P+7"),
    ("0.1", "0.1", "+/B5lpWNm2"),
    ("-1.5e-10", "-1.5e-10", "oFUe4clDTi"),
    ("1e20", "100000000000000000000", "rudGhTS2OP"),
    ("123e-20", "1.23e-18", "VqFZzWYSQV"),
    ("0.0000012", "0.0000012", "GYH2hw0uxl"),
    ("9007199254740991", "9007199254740991", "LNMn5lSmNd"),
    ("9007199254740993", "9007199254740992", "QbSunVDObZ"),
    ("12345678901234567890", "12345678901234567000", "4in+frkLtY"),
    ("123456789012345678901234", "1.2345678901234569e+23", "IU091BmphU"),
    ("1.7976931348623157e308", "1.7976931348623157e+308", "05PISs5wwG"),
    ("5e-324", "5e-324", "qPQuu3yEWp"),
    ("1e400", "Infinity", "qW6hJr6+Sn"),
    ("-1e400", "-Infinity", "wjBEjlcbuM"),
    ("2.50", "2.5", "epn+C0iSMA"),
    ("-42", "-42", "Z467jDlNmF"),
    ("9223372036854775807", "9223372036854776000", "VvciraR3p3"),
    ("-9223372036854775809", "-9223372036854776000", "8NxzRUr0FD"),
]

/// (label, blobId, base64 content, decoded text that Trilium hashes, expected untruncated hash).
let blobVectors: [(label: String, blobId: String, content: String, text: String, hash: String)] = [
    (
        "html", "aB3dE5gH7jK9mN1pQ3sT", "PHA+SGVsbG8sIHdvcmxkITwvcD4=", "<p>Hello, world!</p>",
        "gxxRFBi2FZa0bVGsz+Dv2FlY0f8="
    ),
    ("empty", "eMpTyBl0beMpTyBl0b00", "", "", "qyJGUpGJ3ugLl5N9pQyPyLmQou8="),
    (
        "decomposed", "nFcBl0b0000000000000", "PHA+Q2FmZcyBIOGEkuGFoeGGqzwvcD4=",
        "<p>Cafe\u{301} \u{1112}\u{1161}\u{11ab}</p>", "iZsFJr4n7qKvitk+0BdxjX2skXI="
    ),
    (
        "precomposed", "nFcBl0b0000000000000", "PHA+Q2Fmw6kg7ZWcPC9wPg==", "<p>Caf\u{e9} \u{d55c}</p>",
        "iZsFJr4n7qKvitk+0BdxjX2skXI="
    ),
    (
        "invalid UTF-8 becomes U+FFFD", "bInArYbL0b0000000000", "iVBORw0KGgoA/+KCYQ==",
        "\u{fffd}PNG\r\n\u{1a}\n\u{0}\u{fffd}\u{fffd}a", "ZYkBbnG48prIOv56OOWea7Vz5Ec="
    ),
    (
        "emoji", "eM0j1bL0b00000000000", "8J+YgCDml6XmnKzoqp4=", "\u{1f600} \u{65e5}\u{672c}\u{8a9e}",
        "yjUh+ai8q3wU8mcubUVyj6Aj2rE="
    ),
]

@Suite("ContentHash")
struct ContentHashTests {
    @Test(
        "sha1Base64 = base64(SHA-1(UTF-8(NFC(s))))",
        arguments: [
            ("", "2jmj7l5rSw0yVb/vlWAYkK/YBwk="),
            ("abc", "qZk+NkcGgWq6PiVxeFDCbJzQ2J0="),
            ("hello world", "Kq5sNclPz7QV2+lfQIuc6R7oRu0="),
            ("e\u{301}", "vxW+cXrBsIC08cRWaSgliR/1Bz0="),
            ("\u{e9}", "vxW+cXrBsIC08cRWaSgliR/1Bz0="),
            ("|Kx9fQ2mLp0Ab|Meeting notes", "N4OnGns7Iy7DpV/IUHLjH0NMEvU="),
            ("\u{1112}\u{1161}\u{11ab}", "7d6imqrOO59slh+CvmS1fX0OOno="),
            // Canonical reordering of combining marks, with and without composition.
            ("q\u{307}\u{323}", "4IgJ9XHmGbvWsjtmUKCQsHvRiyg="),
            ("q\u{323}\u{307}", "4IgJ9XHmGbvWsjtmUKCQsHvRiyg="),
            ("a\u{302}\u{323}", "wLmxSJoW4YSTdfl6Rrmfisj4R5o="),
            ("a\u{323}\u{302}", "wLmxSJoW4YSTdfl6Rrmfisj4R5o="),
            ("\u{1ead}", "wLmxSJoW4YSTdfl6Rrmfisj4R5o="),
        ])
    func sha1Base64(input: String, expected: String) {
        #expect(ContentHash.sha1Base64(input) == expected)
    }

    /// Kilobytes of text where only some stretches need normalizing (a binary blob decoded as
    /// UTF-8 looks like this); the expected hash is Python's
    /// `base64(sha1(unicodedata.normalize("NFC", s).encode()))`.
    @Test func aLongTextNormalizesOnlyWhereItMustAndHashesAsPythonDoes() {
        var text = ""
        for i in 0..<400 {
            text += i % 3 != 0 ? "\u{fffd}\u{fffd}PNG\u{1a}" : "a\u{323}\u{302}<\u{338}\u{1112}\u{1161}\u{11ab}"
            text += String(UnicodeScalar(UInt8(0x41 + i % 26)))
        }
        #expect(text.unicodeScalars.count == 3068)
        #expect(ContentHash.sha1Base64(text) == "chIXctDWc49gEOHm7vipyggpYtU=")
        #expect(ContentHash.nfc(text).unicodeScalars.count == 2398)
    }

    /// The UTF-8 repair under blob hashes replaces exactly what Swift's own decoder replaces:
    /// random bytes weighted towards leads, continuations and the edges of Table 3-7, cut at
    /// every length so truncated sequences at the end are covered too.
    @Test func repairingUTF8EqualsSwiftsDecoder() {
        let interesting: [UInt8] = [
            0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE,
            0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF,
        ]
        var state: UInt64 = 0x2026_1126_0009
        func next() -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(state >> 33)
        }
        var checked = 0
        for _ in 0..<5000 {
            let bytes = (0..<(next() % 24)).map { _ in
                next() % 2 == 0 ? interesting[next() % interesting.count] : UInt8(truncatingIfNeeded: next())
            }
            let expected = Array(String(decoding: bytes, as: UTF8.self).utf8)
            let repaired = bytes.withUnsafeBytes { ContentHash.repairingUTF8($0) }
            #expect(repaired == expected, "\(bytes.map { String($0, radix: 16) })")
            if repaired != bytes { checked += 1 }
        }
        #expect(checked > 2000)  // most inputs really needed repair
        let valid = Array("déjà vu — 日本語 😀".utf8)
        #expect(valid.withUnsafeBytes { ContentHash.repairingUTF8($0) } == valid)
    }

    /// The piecewise normalization equals Foundation's over the whole string, byte for byte, on
    /// random mixes of ASCII, combining marks (in and out of canonical order), Hangul jamo,
    /// precomposed letters and U+FFFD.
    @Test func piecewiseNormalizationEqualsWholeStringNormalization() {
        let alphabet: [String] = [
            "a", "e", "q", "<", ">", "=", " ", "\u{301}", "\u{302}", "\u{307}", "\u{323}", "\u{338}", "\u{1100}",
            "\u{1161}", "\u{11a8}", "\u{e9}", "\u{1ead}", "\u{fffd}", "\u{212b}", "\u{2126}", "\u{f900}", "\u{1f600}",
            "\u{65e5}", "\u{344}", "\u{c5}", "\u{2ff}", "\u{300}", "\u{30a}", "\u{fffd}\u{fffd}",
        ]
        var state: UInt64 = 0x2026_1126
        func next() -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(state >> 33)
        }
        for _ in 0..<2000 {
            var text = ""
            for _ in 0..<(1 + next() % 40) { text += alphabet[next() % alphabet.count] }
            let expected = Array(text.precomposedStringWithCanonicalMapping.utf8)
            #expect(
                Array(ContentHash.nfc(text).utf8) == expected,
                "\(text.unicodeScalars.map { String($0.value, radix: 16) })")
        }
    }

    @Test("entity hash matches the independently computed vector", arguments: entityHashVectors)
    func entityHash(_ vector: HashVector) throws {
        // The preimage alone pins down the hashing step ...
        #expect(String(ContentHash.sha1Base64(vector.preimage).prefix(10)) == vector.expected)
        // ... and the row pins down the property selection and the JavaScript string forms.
        #expect(try ContentHash.entityHash(vector.name, row: vector.row) == vector.expected)
        // Local writes hash the row's bytes, reading only the hashed members.
        #expect(try ContentHash.entityHash(vector.name, row: EntityRow(vector.row)) == vector.expected)
    }

    @Test("every vector table entity type is covered")
    func coversEveryEntityType() {
        let covered = Set(entityHashVectors.map(\.name)).union([.blobs, .noteReordering])
        #expect(covered == Set(EntityName.allCases))
    }

    @Test("entity hashes are 10 characters of standard base64")
    func hashShape() throws {
        for vector in entityHashVectors {
            let hash = try ContentHash.entityHash(vector.name, row: vector.row)
            #expect(hash.count == 10)
            #expect(
                hash.utf8.allSatisfy { RandomID.isAlphanumeric(String(UnicodeScalar($0))) || $0 == 0x2B || $0 == 0x2F })
        }
    }

    @Test("JSON numbers hash as JavaScript's String(number)", arguments: numberVectors)
    func numberValues(literal: String, javaScript: String, hash: String) throws {
        #expect(ContentHash.javaScriptNumber(literal) == javaScript)
        #expect(String(ContentHash.sha1Base64("|theme|" + javaScript).prefix(10)) == hash)
        let row = with(option, ["value": .number(literal)])
        #expect(try ContentHash.entityHash(.options, row: row) == hash)
    }

    @Test("Int64.min as a number value hashes as JavaScript's -9223372036854776000")
    func int64MinNumber() throws {
        #expect(ContentHash.javaScriptNumber("-9223372036854775808") == "-9223372036854776000")
        let row = with(option, ["value": .number("-9223372036854775808")])
        #expect(try ContentHash.entityHash(.options, row: row) == "8NxzRUr0FD")
    }

    @Test("the isDeleted argument overrides the row's own flag")
    func isDeletedOverride() throws {
        let deleted = with(note, ["isDeleted": .number("1")])
        #expect(try ContentHash.entityHash(.notes, row: deleted, isDeleted: false) == "1SegZ6/dVQ")
        #expect(try ContentHash.entityHash(.notes, row: note, isDeleted: true) == "a4huFtYSvP")
        #expect(try ContentHash.entityHash(.notes, row: deleted, isDeleted: nil) == "a4huFtYSvP")
    }

    @Test("member order and unhashed columns do not matter")
    func orderIndependent() throws {
        let reordered: JSONObject = [
            "utcDateModified": .string("2099-01-01 00:00:00.000Z"), "blobId": .string("aB3dE5gH7jK9mN1pQ3sT"),
            "mime": .string("text/html"), "type": .string("text"), "isProtected": .number("0"),
            "title": .string("Meeting notes"), "noteId": .string("Kx9fQ2mLp0Ab"), "someFutureColumn": .number("7"),
        ]
        #expect(try ContentHash.entityHash(.notes, row: reordered) == "1SegZ6/dVQ")
    }

    @Test("note_reordering always hashes as N/A")
    func noteReordering() throws {
        #expect(
            try ContentHash.entityHash(.noteReordering, row: ["root_a": .number("10"), "root_b": .number("20")])
                == "N/A")
        #expect(try ContentHash.entityHash(.noteReordering, row: [:]) == "N/A")
    }

    @Test("blob hash = base64(SHA-1(NFC(blobId | content))), untruncated", arguments: blobVectors)
    func blobHash(label: String, blobId: String, content: String, text: String, hash: String) throws {
        #expect(ContentHash.sha1Base64(blobId + "|" + text) == hash)
        #expect(ContentHash.blobHash(blobId: blobId, content: text) == hash)
        #expect(try ContentHash.blobHash(blobId: blobId, base64Content: content) == hash)
        let row: JSONObject = [
            "blobId": .string(blobId), "content": .string(content), "dateModified": .string(local),
            "utcDateModified": .string(utc),
        ]
        #expect(try ContentHash.entityHash(.blobs, row: row) == hash)
        #expect(hash.count == 28)
    }

    @Test("a blob row without blobId or base64 content is refused")
    func badBlobRows() {
        #expect(throws: CoreError(.missingField, "a blob row needs its blobId", field: "entity.blobId")) {
            try ContentHash.entityHash(.blobs, row: ["content": .string("")])
        }
        #expect(throws: CoreError(.missingField, "a blob row needs its content (base64)", field: "entity.content")) {
            try ContentHash.entityHash(.blobs, row: ["blobId": .string("x"), "content": .null])
        }
        #expect(throws: CoreError(.missingField, "a blob row needs its content (base64)", field: "entity.content")) {
            try ContentHash.entityHash(.blobs, row: ["blobId": .string("x")])
        }
        #expect(throws: CoreError(.invalidValue, "blob content must be base64", field: "entity.content")) {
            try ContentHash.entityHash(.blobs, row: ["blobId": .string("x"), "content": .string("not base64!")])
        }
    }

    @Test("sector digest = sha1Base64 of hash + 0/1 per entry, untruncated")
    func sectorDigest() {
        #expect(ContentHash.sectorDigest([(hash: String, isErased: Bool)]()) == "2jmj7l5rSw0yVb/vlWAYkK/YBwk=")
        let entries: [(hash: String, isErased: Bool)] = [
            ("Xy12Ab34Cd", false), ("Pq98Rs76Tu", true), ("Mn55Op66Qr", false),
        ]
        #expect(ContentHash.sectorDigest(entries) == "bHE8d0+etsE9Gik5bT4PDcPzb0I=")
        // Blob hashes are 28 characters; they are concatenated just the same.
        let blobs: [(hash: String, isErased: Bool)] = [
            ("2jmj7l5rSw0yVb/vlWAYkK/YBwk=", false), ("qZk+NkcGgWq6PiVxeFDCbJzQ2J0=", true),
        ]
        #expect(ContentHash.sectorDigest(blobs) == "QggL3P9WY5N6fMxnSH14HSmzOkk=")
        // Order matters.
        #expect(ContentHash.sectorDigest(entries.reversed()) != "bHE8d0+etsE9Gik5bT4PDcPzb0I=")
    }

    @Test(
        "JavaScript truthiness of row values",
        arguments: [
            (JSONValue.null, false), (.bool(false), false), (.bool(true), true), (.number("0"), false),
            (.number("-0"), false), (.number("0.0"), false), (.number("1"), true), (.number("2"), true),
            (.number("0.5"), true), (.string(""), false), (.string("0"), true), (.string("false"), true),
            (.array([]), true), (.object([:]), true),
        ])
    func truthiness(value: JSONValue, truthy: Bool) {
        #expect(value.isTruthy == truthy)
    }
}
