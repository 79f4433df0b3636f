import Testing

@testable import TributaryCore

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

private func parse(_ text: String) throws(CoreError) -> JSONValue { try JSONParser.parse(bytes(text)) }

/// An input that is not valid JSON, given as bytes so invalid UTF-8 can be expressed.
struct BadJSON: Sendable, CustomTestStringConvertible {
    var label: String
    var bytes: [UInt8]
    init(_ label: String, _ text: String) {
        self.label = label
        self.bytes = Array(text.utf8)
    }
    init(_ label: String, bytes: [UInt8]) {
        self.label = label
        self.bytes = bytes
    }
    var testDescription: String { label }
}

/// Values that are invalid wherever they appear (top level or as a member value).
let badValues: [BadJSON] = [
    BadJSON("leading zero", "01"),
    BadJSON("lone minus", "-"),
    BadJSON("no digit after point", "1."),
    BadJSON("no digit before point", ".5"),
    BadJSON("plus sign", "+1"),
    BadJSON("NaN", "NaN"),
    BadJSON("Infinity", "Infinity"),
    BadJSON("-Infinity", "-Infinity"),
    BadJSON("empty exponent", "1e"),
    BadJSON("signed empty exponent", "1e+"),
    BadJSON("hex", "0x10"),
    BadJSON("array trailing comma", "[1,]"),
    BadJSON("array leading comma", "[,1]"),
    BadJSON("array missing comma", "[1 2]"),
    BadJSON("unterminated array", "[1,2"),
    BadJSON("object trailing comma", "{\"a\":1,}"),
    BadJSON("object missing colon", "{\"a\" 1}"),
    BadJSON("unquoted key", "{a:1}"),
    BadJSON("single quotes", "'a'"),
    BadJSON("unterminated string", "\"abc"),
    BadJSON("raw control character in string", "\"a\u{1}b\""),
    BadJSON("raw tab in string", "\"a\tb\""),
    BadJSON("raw newline in string", "\"a\nb\""),
    BadJSON("lone high surrogate escape", "\"\\ud800\""),
    BadJSON("lone low surrogate escape", "\"\\udc00\""),
    BadJSON("high surrogate then non-surrogate escape", "\"\\ud800\\u0041\""),
    BadJSON("high surrogate then text", "\"\\ud800x\""),
    BadJSON("unknown escape", "\"\\x\""),
    BadJSON("short unicode escape", "\"\\u12\""),
    BadJSON("non-hex unicode escape", "\"\\u12G4\""),
    BadJSON("truncated true", "tru"),
    BadJSON("truncated null", "nul"),
    BadJSON("capitalised True", "True"),
    BadJSON("lone close bracket", "]"),
    BadJSON("invalid UTF-8 byte", bytes: [0x22, 0xFF, 0x22]),
    BadJSON("overlong UTF-8", bytes: [0x22, 0xC0, 0xAF, 0x22]),
    BadJSON("UTF-8 encoded surrogate", bytes: [0x22, 0xED, 0xA0, 0x80, 0x22]),
    BadJSON("truncated UTF-8 sequence", bytes: [0x22, 0xE2, 0x82, 0x22]),
    BadJSON("invalid UTF-8 after an escape", bytes: [0x22, 0x5C, 0x6E, 0xFF, 0x22]),
    BadJSON("invalid UTF-8 before an escape", bytes: [0x22, 0xFF, 0x5C, 0x6E, 0x22]),
]

/// Documents that are invalid only as whole documents.
let badDocuments: [BadJSON] = [
    BadJSON("empty", ""),
    BadJSON("only whitespace", "  \n"),
    BadJSON("two values", "1 2"),
    BadJSON("trailing garbage", "{}x"),
    BadJSON("two objects", "{} {}"),
    BadJSON("unterminated object", "{\"a\":1"),
    BadJSON("dangling key", "{\"a\""),
]

private func nestedArrays(_ depth: Int) -> String {
    String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
}

private func nestedObjects(_ depth: Int) -> String {
    String(repeating: "{\"a\":", count: depth) + "1" + String(repeating: "}", count: depth)
}

@Suite("JSON")
struct JSONTests {
    // MARK: Parser

    @Test("invalid values are refused as malformed JSON", arguments: badValues)
    func invalidValue(_ bad: BadJSON) {
        let error = #expect(throws: CoreError.self) { try JSONParser.parse(bad.bytes) }
        #expect(error?.code == .malformedJSON)
        #expect(error?.field == nil)
    }

    @Test("invalid values are refused inside an entity row too (scanning path)", arguments: badValues)
    func invalidValueInRow(_ bad: BadJSON) {
        let compact = bytes("{\"a\":") + bad.bytes + bytes("}")
        let spaced = bytes("{ \"a\" : ") + bad.bytes + bytes(" }")
        for input in [compact, spaced] {
            let error = #expect(throws: CoreError.self) { try EntityRow(validating: input) }
            #expect(error?.code == .malformedJSON)
        }
    }

    @Test("invalid documents are refused", arguments: badDocuments)
    func invalidDocument(_ bad: BadJSON) {
        let error = #expect(throws: CoreError.self) { try JSONParser.parse(bad.bytes) }
        #expect(error?.code == .malformedJSON)
    }

    @Test("nesting is limited to 64 levels")
    func depth() throws {
        #expect(throws: Never.self) { try parse(nestedArrays(64)) }
        #expect(throws: Never.self) { try parse(nestedObjects(64)) }
        for deep in [nestedArrays(65), nestedObjects(65), nestedArrays(1000)] {
            let error = #expect(throws: CoreError.self) { try parse(deep) }
            #expect(error?.code == .malformedJSON)
            #expect(error?.message.contains("nesting deeper than 64") == true)
        }
        // The scanning path (entity rows) applies the same limit.
        #expect(throws: Never.self) { try EntityRow(validating: bytes("{\"a\":" + nestedArrays(63) + "}")) }
        let error = #expect(throws: CoreError.self) {
            try EntityRow(validating: bytes("{\"a\":" + nestedArrays(64) + "}"))
        }
        #expect(error?.code == .malformedJSON)
    }

    @Test(
        "scalars parse, numbers kept as written",
        arguments: [
            ("0", JSONValue.number("0")), ("-0", .number("-0")), ("1.50", .number("1.50")),
            ("1E+2", .number("1E+2")), ("-1.5e-10", .number("-1.5e-10")),
            ("12345678901234567890", .number("12345678901234567890")),
            ("true", .bool(true)), ("false", .bool(false)), ("null", .null), ("\"\"", .string("")),
            (" \t\r\n 42 \n", .number("42")), ("[]", .array([])), ("{}", .object([:])),
        ])
    func scalars(text: String, expected: JSONValue) throws {
        #expect(try parse(text) == expected)
    }

    @Test(
        "string escapes decode",
        arguments: [
            ("\"a\\nb\"", "a\nb"),
            ("\"\\u00e9\"", "\u{e9}"),
            ("\"\\u00E9\"", "\u{e9}"),
            ("\"\\ud83d\\ude00\"", "\u{1f600}"),
            ("\"\\uD83D\\uDE00\"", "\u{1f600}"),
            ("\"\\/\\\"\\\\\"", "/\"\\"),
            ("\"\\b\\f\\r\\t\"", "\u{8}\u{c}\r\t"),
            ("\"\\u0000\"", "\u{0}"),
            ("\"e\\u0301\"", "e\u{301}"),
            ("\"\u{e9}\\u00e9\u{1f600}x\"", "\u{e9}\u{e9}\u{1f600}x"),
            ("\"caf\u{e9}\"", "caf\u{e9}"),
        ])
    func escapes(text: String, expected: String) throws {
        let value = try parse(text)
        // Compare bytes: Swift's String == treats canonically equivalent strings as equal.
        #expect(value.stringValue.map { Array($0.utf8) } == Array(expected.utf8))
    }

    @Test("object members keep document order, duplicates included")
    func memberOrder() throws {
        let object = try JSONParser.parseObject(bytes("{\"b\":1,\"a\":2,\"c\":{\"z\":1,\"y\":2},\"a\":3}"))
        #expect(object.members.map(\.key) == ["b", "a", "c", "a"])
        #expect(
            object.members.map(\.value) == [
                .number("1"), .number("2"), .object(["z": .number("1"), "y": .number("2")]), .number("3"),
            ])
        #expect(object["c"]?.objectValue?.members.map(\.key) == ["z", "y"])
        #expect(object.count == 4)
    }

    @Test("numbers in containers keep their text")
    func numbersInContainers() throws {
        #expect(
            try parse("[1.50, 1e2, -0, 100]")
                == .array([.number("1.50"), .number("1e2"), .number("-0"), .number("100")]))
        #expect(try parse("{\"x\":1.50}") == .object(["x": .number("1.50")]))
    }

    @Test("parseObject refuses non-objects with wrongType")
    func parseObjectWrongType() {
        for text in ["[]", "1", "\"x\"", "null", "true"] {
            let error = #expect(throws: CoreError.self) { try JSONParser.parseObject(bytes(text)) }
            #expect(error?.code == .wrongType)
        }
    }

    @Test("non-contiguous input parses the same")
    func nonContiguous() throws {
        let lazy = bytes("{\"a\":[1.50,\"\\u00e9\"]}").lazy.map { $0 }
        #expect(try JSONParser.parse(lazy) == .object(["a": .array([.number("1.50"), .string("\u{e9}")])]))
        let row = try EntityRow(validating: bytes("{\"a\":1}").lazy.map { $0 })
        #expect(row.bytes == bytes("{\"a\":1}"))
    }

    // MARK: Writer

    @Test(
        "strings are escaped like JSON.stringify",
        arguments: [
            ("\"", "\"\\\"\""), ("\\", "\"\\\\\""), ("\n", "\"\\n\""), ("\r", "\"\\r\""), ("\t", "\"\\t\""),
            ("\u{8}", "\"\\b\""), ("\u{c}", "\"\\f\""), ("\u{1}", "\"\\u0001\""), ("\u{1f}", "\"\\u001f\""),
            ("\u{0}", "\"\\u0000\""), ("\u{1b}", "\"\\u001b\""), ("\u{7f}", "\"\u{7f}\""), ("\u{e9}", "\"\u{e9}\""),
            ("/", "\"/\""), ("\u{2028}", "\"\u{2028}\""), ("\u{1f600}", "\"\u{1f600}\""),
            ("e\u{301}", "\"e\u{301}\""), ("a\"b\\c\nd\u{0}", "\"a\\\"b\\\\c\\nd\\u0000\""),
            ("", "\"\""), ("\"\"x\n", "\"\\\"\\\"x\\n\""), ("plain text, no escapes", "\"plain text, no escapes\""),
        ])
    func writerEscaping(input: String, expected: String) {
        var writer = JSONWriter()
        writer.string(input)
        #expect(writer.bytes == bytes(expected))
        #expect(JSONValue.string(input).jsonBytes == bytes(expected))
    }

    @Test("values are written compactly")
    func writerCompact() {
        let value = JSONValue.object([
            "a": .array([.number("1.50"), .null, .bool(true), .bool(false), .string("x")]),
            "b": .object([:]), "c": .array([]), "n": .number(-12),
        ])
        #expect(value.jsonBytes == bytes("{\"a\":[1.50,null,true,false,\"x\"],\"b\":{},\"c\":[],\"n\":-12}"))
    }

    @Test("writer keys and integers")
    func writerHelpers() {
        var writer = JSONWriter()
        writer.raw("{")
        writer.key("a", first: true)
        writer.number(UInt64.max)
        writer.key("b")
        writer.number(-5)
        writer.raw("}")
        #expect(writer.bytes == bytes("{\"a\":18446744073709551615,\"b\":-5}"))
    }

    @Test("compact documents round-trip through parse and write byte for byte")
    func roundTrip() throws {
        let texts = [
            "{\"k\":\"\u{e9}\\n\\u0001\",\"n\":-0.0,\"a\":[],\"o\":{\"x\":null,\"y\":[true,false,1e5]}}",
            "[\"\\\"\\\\\",\"\u{1f600}\",\"e\u{301}\"]",
            "\"\u{2028}\"",
        ]
        for text in texts {
            #expect(try parse(text).jsonBytes == bytes(text))
        }
        // Escapes JSON.stringify would not produce are written in its form instead.
        #expect(try parse("\"\\u00e9\\/\\u000A\"").jsonBytes == bytes("\"\u{e9}/\\n\""))
    }

    // MARK: EntityRow

    @Test(
        "compact rows are kept byte for byte",
        arguments: [
            "{}",
            "{\"b\":1,\"a\":\"x\",\"n\":1.50,\"u\":\"\\u00e9\"}",
            "{\"a\":\"x y\\n\",\"b\":[1,2],\"c\":{\"d\":null}}",
            "{\"e\":1E+2,\"s\":\"\\/\",\"t\":\"e\u{301}\"}",
        ])
    func compactRowVerbatim(text: String) throws {
        let row = try EntityRow(validating: bytes(text))
        #expect(row.bytes == bytes(text))
        #expect(Array(row.text.utf8) == bytes(text))
    }

    @Test(
        "rows with whitespace are re-emitted compactly",
        arguments: [
            ("{ \"b\" : 1 ,\n \"a\":[1, 2] }", "{\"b\":1,\"a\":[1,2]}"),
            ("  {\"a\":1}", "{\"a\":1}"),
            ("{\"a\":1}\n", "{\"a\":1}"),
            ("{\"a\":{ }}", "{\"a\":{}}"),
            ("{ \"u\" : \"\\u00e9\\n\", \"n\": 1.50 }", "{\"u\":\"\u{e9}\\n\",\"n\":1.50}"),
            ("{\r\n\t\"x\":\"keep  inner  spaces\"\r\n}", "{\"x\":\"keep  inner  spaces\"}"),
        ])
    func spacedRowCompacted(input: String, expected: String) throws {
        let row = try EntityRow(validating: bytes(input))
        #expect(row.bytes == bytes(expected))
    }

    @Test(
        "rows must be one JSON object",
        arguments: [
            ("[]", CoreError.Code.wrongType), ("1", .wrongType), ("\"s\"", .wrongType), ("null", .wrongType),
            ("", .wrongType), ("   ", .wrongType), ("[{\"a\":1}]", .wrongType),
            ("{", .malformedJSON), ("{}{}", .malformedJSON), ("{} x", .malformedJSON), ("{\"a\":1,}", .malformedJSON),
            ("{\"a\"}", .malformedJSON),
        ])
    func rowRejects(input: String, code: CoreError.Code) {
        let error = #expect(throws: CoreError.self) { try EntityRow(validating: bytes(input)) }
        #expect(error?.code == code)
    }

    @Test("a row built from an object is its compact JSON, and parses back")
    func rowFromObject() throws {
        let object: JSONObject = ["noteId": .string("abc"), "title": .string("T\u{e9}\n"), "isProtected": .number("0")]
        let row = EntityRow(object)
        #expect(row.bytes == bytes("{\"noteId\":\"abc\",\"title\":\"T\u{e9}\\n\",\"isProtected\":0}"))
        #expect(try row.object() == object)
        #expect(try EntityRow(validating: row.bytes) == row)
    }

    @Test("value(forKey:) reads one top-level member")
    func valueForKey() throws {
        let row = try EntityRow(
            validating: bytes(
                "{\"a\":1.50,\"b\":{\"c\":2},\"c\":\"x\",\"d\":null,\"e\":[1,{\"c\":3}],\"f\":\"\\u00e9\"}"))
        #expect(row.value(forKey: "a") == .number("1.50"))
        #expect(row.value(forKey: "b") == .object(["c": .number("2")]))
        #expect(row.value(forKey: "c") == .string("x"))
        #expect(row.value(forKey: "d") == .null)
        #expect(row.value(forKey: "e") == .array([.number("1"), .object(["c": .number("3")])]))
        #expect(row.value(forKey: "f") == .string("\u{e9}"))
        #expect(row.value(forKey: "missing") == nil)
        #expect(row.value(forKey: "") == nil)
        #expect(try EntityRow(validating: bytes("{}")).value(forKey: "a") == nil)
        #expect(EntityRow(["k": .bool(false)]).value(forKey: "k") == .bool(false))
    }

    // MARK: Values

    @Test("JSONValue accessors")
    func accessors() {
        #expect(JSONValue.number(12) == .number("12"))
        #expect(JSONValue.number("12").intValue == 12)
        #expect(JSONValue.number("-3").intValue == -3)
        #expect(JSONValue.number("1.5").intValue == nil)
        #expect(JSONValue.number("1e2").intValue == nil)
        #expect(JSONValue.string("12").intValue == nil)
        #expect(JSONValue.string("s").stringValue == "s")
        #expect(JSONValue.number("1").stringValue == nil)
        #expect(JSONValue.object(["a": .null]).objectValue == ["a": .null])
        #expect(JSONValue.array([]).objectValue == nil)
        #expect(
            [JSONValue.null, .bool(true), .number("1"), .string(""), .array([]), .object([:])].map(\.typeName)
                == ["null", "boolean", "number", "string", "array", "object"])
    }

    @Test("JSONObject subscript replaces in place, appends, and removes")
    func objectSubscript() {
        var object: JSONObject = ["a": .number("1"), "b": .number("2"), "c": .number("3")]
        object["b"] = .string("B")
        object["d"] = .null
        object["a"] = nil
        object["zz"] = nil
        #expect(object.members.map(\.key) == ["b", "c", "d"])
        #expect(object["b"] == .string("B"))
        #expect(object["d"] == .null)
        #expect(object["a"] == nil)
    }
}
