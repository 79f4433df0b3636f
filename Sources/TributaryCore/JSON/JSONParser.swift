/// A strict JSON parser over UTF-8 bytes (RFC 8259: no comments, no trailing commas, no NaN).
///
/// Besides building values it can *scan* a value — validate it and report where it ends —
/// without allocating, which is how entity rows are kept as their original bytes.
public struct JSONParser: ~Copyable {
    let bytes: UnsafeRawBufferPointer
    var position: Int
    var depth = 0
    /// Set when a scanned value contained whitespace between tokens.
    var sawWhitespace = false
    static let maxDepth = 64

    init(_ bytes: UnsafeRawBufferPointer, position: Int = 0) {
        self.bytes = bytes
        self.position = position
    }

    /// Parses one complete JSON document.
    public static func parse(_ bytes: some Collection<UInt8>) throws(CoreError) -> JSONValue {
        try withRawBytes(bytes) { raw throws(CoreError) in
            var parser = JSONParser(raw)
            parser.skipWhitespace()
            let value = try parser.parseValue()
            parser.skipWhitespace()
            guard parser.position == raw.count else { throw parser.error("unexpected data after the JSON value") }
            return value
        }
    }

    /// Parses a JSON object document.
    public static func parseObject(_ bytes: some Collection<UInt8>) throws(CoreError) -> JSONObject {
        let value = try parse(bytes)
        guard case .object(let object) = value else {
            throw CoreError(.wrongType, "expected a JSON object, found \(value.typeName)")
        }
        return object
    }

    func error(_ message: String) -> CoreError {
        CoreError(.malformedJSON, "malformed JSON at byte \(position): \(message)")
    }

    var atEnd: Bool { position >= bytes.count }
    var peek: UInt8 { bytes[position] }

    /// Compact JSON (what peers send) has none: one comparison, not a call, in that case.
    @inline(__always)
    mutating func skipWhitespace() {
        guard position < bytes.count, bytes[position] <= 0x20 else { return }
        skipWhitespaceRun()
    }

    private mutating func skipWhitespaceRun() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x0A, 0x0D, 0x09:
                position += 1
                sawWhitespace = true
            default: return
            }
        }
    }

    mutating func expect(_ byte: UInt8, _ what: String) throws(CoreError) {
        guard !atEnd, peek == byte else { throw error("expected \(what)") }
        position += 1
    }

    mutating func parseValue() throws(CoreError) -> JSONValue {
        guard !atEnd else { throw error("unexpected end of input") }
        switch peek {
        case UInt8(ascii: "{"): return .object(try parseObjectBody())
        case UInt8(ascii: "["):
            try enter()
            position += 1
            var elements: [JSONValue] = []
            skipWhitespace()
            if !atEnd, peek == UInt8(ascii: "]") {
                position += 1
                depth -= 1
                return .array(elements)
            }
            while true {
                skipWhitespace()
                elements.append(try parseValue())
                skipWhitespace()
                guard !atEnd else { throw error("unterminated array") }
                if peek == UInt8(ascii: ",") {
                    position += 1
                    continue
                }
                try expect(UInt8(ascii: "]"), "',' or ']'")
                depth -= 1
                return .array(elements)
            }
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"):
            try literal("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try literal("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try literal("null")
            return .null
        default:
            let start = position
            try scanNumber()
            return .number(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self))
        }
    }

    mutating func enter() throws(CoreError) {
        depth += 1
        guard depth <= JSONParser.maxDepth else { throw error("nesting deeper than \(JSONParser.maxDepth)") }
    }

    /// Visits the members of the object that starts at the position (a `{`), and leaves the
    /// parser just after it; `body` must consume each value.
    mutating func objectMembers(_ body: (String, inout JSONParser) throws(CoreError) -> Void) throws(CoreError) {
        try objectMembers(named: { name, parser throws(CoreError) in try body(name.string, &parser) })
    }

    /// `objectMembers` with each name as a ``MemberName``: a decoder that only compares names with
    /// the ones it knows makes no String of them (a sync record has ten).
    mutating func objectMembers(named body: (MemberName, inout JSONParser) throws(CoreError) -> Void)
        throws(CoreError)
    {
        position += 1
        skipWhitespace()
        if !atEnd, peek == UInt8(ascii: "}") {
            position += 1
            return
        }
        while true {
            skipWhitespace()
            guard !atEnd, peek == UInt8(ascii: "\"") else { throw error("expected a member name") }
            let name = try memberName()
            skipWhitespace()
            try expect(UInt8(ascii: ":"), "':'")
            skipWhitespace()
            try body(name, &self)
            skipWhitespace()
            guard !atEnd else { throw error("unterminated object") }
            if peek == UInt8(ascii: ",") {
                position += 1
                continue
            }
            try expect(UInt8(ascii: "}"), "',' or '}'")
            return
        }
    }

    mutating func parseObjectBody() throws(CoreError) -> JSONObject {
        var members: [JSONObject.Member] = []
        try nestedObjectMembers { key, parser throws(CoreError) in
            members.append(JSONObject.Member(key.string, try parser.parseValue()))
        }
        return JSONObject(members)
    }

    /// `objectMembers` for an object nested in the document, counted against the nesting limit.
    mutating func nestedObjectMembers(named body: (MemberName, inout JSONParser) throws(CoreError) -> Void)
        throws(CoreError)
    {
        try enter()
        try objectMembers(named: body)
        depth -= 1
    }

    /// The member name starting at the position (a quote): a view of the input when it is plain
    /// ASCII without escapes, else parsed as any string.
    mutating func memberName() throws(CoreError) -> MemberName {
        let start = position + 1
        var end = skipPlainASCII(from: start)
        while end < bytes.count {
            let b = bytes[end]
            if b == UInt8(ascii: "\"") {
                position = end + 1
                return .raw(UnsafeRawBufferPointer(rebasing: bytes[start..<end]))
            }
            if b == UInt8(ascii: "\\") || b < 0x20 || b >= 0x80 { break }
            end += 1
        }
        return .decoded(try parseString())
    }

    mutating func literal(_ word: StaticString) throws(CoreError) {
        let count = word.utf8CodeUnitCount
        guard position + count <= bytes.count else { throw error("unexpected end of input") }
        let matches = word.withUTF8Buffer { w in
            (0..<count).allSatisfy { bytes[position + $0] == w[$0] }
        }
        guard matches else { throw error("invalid literal") }
        position += count
    }

    mutating func scanNumber() throws(CoreError) {
        let start = position
        if !atEnd, peek == UInt8(ascii: "-") { position += 1 }
        guard !atEnd, isDigit(peek) else {
            position = start
            throw error("unexpected character")
        }
        if peek == UInt8(ascii: "0") {
            position += 1
        } else {
            while !atEnd, isDigit(peek) { position += 1 }
        }
        if !atEnd, peek == UInt8(ascii: ".") {
            position += 1
            guard !atEnd, isDigit(peek) else { throw error("digit expected after '.'") }
            while !atEnd, isDigit(peek) { position += 1 }
        }
        if !atEnd, peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            position += 1
            if !atEnd, peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { position += 1 }
            guard !atEnd, isDigit(peek) else { throw error("digit expected in exponent") }
            while !atEnd, isDigit(peek) { position += 1 }
        }
    }

    /// Parses a string starting at its opening quote.
    mutating func parseString() throws(CoreError) -> String {
        position += 1
        let start = position
        // Fast path: no escapes.
        while position < bytes.count {
            position = skipPlainASCII(from: position)
            guard position < bytes.count else { break }
            let b = bytes[position]
            if b == UInt8(ascii: "\"") {
                let slice = UnsafeRawBufferPointer(rebasing: bytes[start..<position])
                position += 1
                return try makeString(slice)
            }
            if b == UInt8(ascii: "\\") { break }
            if b < 0x20 { throw error("control character in string") }
            position += 1
        }
        var scratch = [UInt8](UnsafeRawBufferPointer(rebasing: bytes[start..<position]))
        while true {
            guard position < bytes.count else { throw error("unterminated string") }
            let b = bytes[position]
            position += 1
            switch b {
            case UInt8(ascii: "\""):
                guard let s = String(validating: scratch, as: UTF8.self) else { throw error("invalid UTF-8 in string") }
                return s
            case UInt8(ascii: "\\"):
                guard position < bytes.count else { throw error("unterminated escape") }
                let e = bytes[position]
                position += 1
                switch e {
                case UInt8(ascii: "\""): scratch.append(0x22)
                case UInt8(ascii: "\\"): scratch.append(0x5C)
                case UInt8(ascii: "/"): scratch.append(0x2F)
                case UInt8(ascii: "b"): scratch.append(0x08)
                case UInt8(ascii: "f"): scratch.append(0x0C)
                case UInt8(ascii: "n"): scratch.append(0x0A)
                case UInt8(ascii: "r"): scratch.append(0x0D)
                case UInt8(ascii: "t"): scratch.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        guard position + 1 < bytes.count, bytes[position] == UInt8(ascii: "\\"),
                            bytes[position + 1] == UInt8(ascii: "u")
                        else { throw error("unpaired surrogate") }
                        position += 2
                        let low = try hex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw error("unpaired surrogate") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        throw error("unpaired surrogate")
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw error("invalid \\u escape") }
                    scratch.append(contentsOf: Array(String(Character(u)).utf8))
                default: throw error("invalid escape")
                }
            default:
                if b < 0x20 { throw error("control character in string") }
                scratch.append(b)
            }
        }
    }

    mutating func hex4() throws(CoreError) -> UInt32 {
        guard position + 4 <= bytes.count else { throw error("short \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[position]
            position += 1
            let d: UInt32
            switch c {
            case 48...57: d = UInt32(c - 48)
            case 65...70: d = UInt32(c - 55)
            case 97...102: d = UInt32(c - 87)
            default: throw error("invalid \\u escape")
            }
            value = value << 4 | d
        }
        return value
    }

    /// A string from raw bytes: ASCII (checked eight bytes at a time) is copied as is, anything
    /// else is validated as UTF-8.
    func makeString(_ slice: UnsafeRawBufferPointer) throws(CoreError) -> String {
        var ascii = true
        var i = 0
        while i + 8 <= slice.count {
            if slice.loadUnaligned(fromByteOffset: i, as: UInt64.self) & 0x8080_8080_8080_8080 != 0 {
                ascii = false
                break
            }
            i += 8
        }
        if ascii {
            while i < slice.count {
                if slice[i] >= 0x80 {
                    ascii = false
                    break
                }
                i += 1
            }
        }
        if ascii { return String(decoding: slice.assumingMemoryBound(to: UInt8.self), as: UTF8.self) }
        guard let s = String(validating: slice, as: UTF8.self) else { throw error("invalid UTF-8 in string") }
        return s
    }

    /// Validates the value at the current position and moves past it, allocating nothing.
    mutating func skipValue() throws(CoreError) {
        guard !atEnd else { throw error("unexpected end of input") }
        switch peek {
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            let close = peek == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")
            let isObject = close == UInt8(ascii: "}")
            try enter()
            position += 1
            skipWhitespace()
            if !atEnd, peek == close {
                position += 1
                depth -= 1
                return
            }
            while true {
                skipWhitespace()
                if isObject {
                    guard !atEnd, peek == UInt8(ascii: "\"") else { throw error("expected a member name") }
                    try skipString()
                    skipWhitespace()
                    try expect(UInt8(ascii: ":"), "':'")
                    skipWhitespace()
                }
                try skipValue()
                skipWhitespace()
                guard !atEnd else { throw error("unterminated container") }
                if peek == UInt8(ascii: ",") {
                    position += 1
                    continue
                }
                try expect(close, isObject ? "',' or '}'" : "',' or ']'")
                depth -= 1
                return
            }
        case UInt8(ascii: "\""): try skipString()
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        default: try scanNumber()
        }
    }

    /// The first position at or after `from` whose byte is a quote, a backslash, a control
    /// character or non-ASCII — eight bytes per step (rows are mostly long plain ASCII: titles,
    /// base64 blob content).
    @inline(__always)
    func skipPlainASCII(from: Int) -> Int {
        var p = from
        let end = bytes.count
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        while p + 8 <= end {
            let w = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: p, as: UInt64.self))
            let quote = w ^ (ones &* 0x22)
            let slash = w ^ (ones &* 0x5C)
            // Zero-byte tests for `"` and `\`; `w - 0x20…` borrows for bytes below 0x20; any
            // high bit marks non-ASCII.
            let special =
                ((quote &- ones) & ~quote) | ((slash &- ones) & ~slash) | ((w &- ones &* 0x20) & ~w) | w
            if special & highs != 0 { break }
            p += 8
        }
        return p
    }

    /// Validates a string (escapes and UTF-8) without building it.
    mutating func skipString() throws(CoreError) {
        position += 1
        var start = position
        var ascii = true
        while position < bytes.count {
            position = skipPlainASCII(from: position)
            guard position < bytes.count else { break }
            let b = bytes[position]
            if b == UInt8(ascii: "\"") {
                if !ascii { try validateUTF8(start, position) }
                position += 1
                return
            }
            if b == UInt8(ascii: "\\") {
                if !ascii { try validateUTF8(start, position) }
                ascii = true
                guard position + 1 < bytes.count else { throw error("unterminated escape") }
                let e = bytes[position + 1]
                position += 2
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                    UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    break
                case UInt8(ascii: "u"):
                    let scalar = try hex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        guard position + 1 < bytes.count, bytes[position] == UInt8(ascii: "\\"),
                            bytes[position + 1] == UInt8(ascii: "u")
                        else { throw error("unpaired surrogate") }
                        position += 2
                        guard (0xDC00...0xDFFF).contains(try hex4()) else { throw error("unpaired surrogate") }
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        throw error("unpaired surrogate")
                    }
                default: throw error("invalid escape")
                }
                start = position
                continue
            }
            if b < 0x20 { throw error("control character in string") }
            if b >= 0x80 { ascii = false }
            position += 1
        }
        throw error("unterminated string")
    }

    func validateUTF8(_ from: Int, _ to: Int) throws(CoreError) {
        let slice = UnsafeRawBufferPointer(rebasing: bytes[from..<to])
        var iterator = slice.makeIterator()
        var decoder = UTF8()
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue: continue
            case .emptyInput: return
            case .error: throw error("invalid UTF-8 in string")
            }
        }
    }
}

@inline(__always) private func isDigit(_ b: UInt8) -> Bool { b >= 48 && b <= 57 }

/// Runs `body` over the collection's bytes, copying only when it is not contiguous.
func withRawBytes<R, E: Error>(
    _ bytes: some Collection<UInt8>, _ body: (UnsafeRawBufferPointer) throws(E) -> R
) throws(E) -> R {
    let contiguous: Result<R, E>? = bytes.withContiguousStorageIfAvailable { buffer in
        do throws(E) {
            return .success(try body(UnsafeRawBufferPointer(buffer)))
        } catch {
            return .failure(error)
        }
    }
    if let contiguous { return try contiguous.get() }
    let copy = Array(bytes)
    let result: Result<R, E> = copy.withUnsafeBytes { raw in
        do throws(E) {
            return .success(try body(raw))
        } catch {
            return .failure(error)
        }
    }
    return try result.get()
}

/// An object member's name during a parse: a view of its bytes in the input (the usual case, plain
/// ASCII without escapes), or its decoded text. Valid only while the parser's input is.
enum MemberName {
    case raw(UnsafeRawBufferPointer)
    case decoded(String)

    var string: String {
        switch self {
        case .raw(let bytes): String(decoding: bytes, as: UTF8.self)
        case .decoded(let text): text
        }
    }

    /// Its length in UTF-8 bytes.
    var count: Int {
        switch self {
        case .raw(let bytes): bytes.count
        case .decoded(let text): text.utf8.count
        }
    }

    /// Whether the name is `name`, compared as UTF-8 bytes.
    func matches(_ name: StaticString) -> Bool {
        name.withUTF8Buffer { expected in
            switch self {
            case .raw(let bytes):
                guard bytes.count == expected.count else { return false }
                for i in 0..<expected.count where bytes[i] != expected[i] { return false }
                return true
            case .decoded(let text): return text.utf8.elementsEqual(expected)
            }
        }
    }
}
