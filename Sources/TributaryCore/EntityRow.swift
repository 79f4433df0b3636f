/// An entity's row as a JSON object, kept as its compact JSON bytes.
///
/// Rows are stored and re-sent verbatim, unknown columns included (newer Trilium schemas add
/// columns; dropping them would lose data). The bytes are always one valid, compact JSON object:
/// every initialiser checks or produces that.
public struct EntityRow: Sendable, Hashable {
    public let bytes: [UInt8]

    /// Validates `json` as one JSON object. Compact input is kept byte for byte; input with
    /// whitespace between tokens is re-emitted compactly so a row always fits on one line.
    public init(validating json: some Collection<UInt8>) throws(CoreError) {
        let compact: [UInt8]? = try withRawBytes(json) { raw throws(CoreError) in
            var parser = JSONParser(raw)
            parser.skipWhitespace()
            guard !parser.atEnd, parser.peek == UInt8(ascii: "{") else {
                throw CoreError(.wrongType, "the entity row must be a JSON object")
            }
            let start = parser.position
            try parser.skipValue()
            let end = parser.position
            let leadingOrInner = parser.sawWhitespace
            parser.skipWhitespace()
            guard parser.atEnd else { throw parser.error("unexpected data after the row") }
            if leadingOrInner { return nil }
            return [UInt8](UnsafeRawBufferPointer(rebasing: raw[start..<end]))
        }
        if let compact {
            bytes = compact
        } else {
            bytes = EntityRow.compactBytes(try JSONParser.parseObject(json))
        }
    }

    /// A row from an object built in code.
    public init(_ object: JSONObject) {
        bytes = EntityRow.compactBytes(object)
    }

    static func compactBytes(_ object: JSONObject) -> [UInt8] {
        var writer = JSONWriter()
        writer.write(object)
        return writer.bytes
    }

    /// A row whose bytes were validated when written (read back from the checksummed log).
    package init(trusted bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// The row parsed into members.
    public func object() throws(CoreError) -> JSONObject {
        try JSONParser.parseObject(bytes)
    }

    /// The value of the top-level member `key` (the last one if the name repeats, as
    /// JavaScript's `JSON.parse` reads it), parsing only that member.
    public func value(forKey key: String) -> JSONValue? {
        var key = key
        var found: JSONValue?
        let complete = key.withUTF8 { wanted in
            walkMembers { name, _, parser throws(CoreError) in
                guard parser.bytes[name].elementsEqual(UnsafeRawBufferPointer(wanted)) else { return false }
                found = try parser.parseValue()
                return true
            }
        }
        return complete ? found : nil
    }

    /// The values of the top-level members named `keys` (UTF-8), in one pass over the row,
    /// parsing only those members; the last one counts if a name repeats, and a key listed twice
    /// gets the value twice.
    func values(forKeys keys: [[UInt8]]) -> [JSONValue?] {
        var found = [JSONValue?](repeating: nil, count: keys.count)
        let complete = walkMembers { name, _, parser throws(CoreError) in
            var value: JSONValue?
            for (i, key) in keys.enumerated() where key.count == name.count && key.elementsEqual(parser.bytes[name]) {
                if value == nil { value = try parser.parseValue() }
                found[i] = value
            }
            return value != nil
        }
        return complete ? found : [JSONValue?](repeating: nil, count: keys.count)
    }

    /// Walks the top-level members in order, handing `body` where each name is in the row (its
    /// bytes between the quotes, as written), whether it holds an escape, and the parser at its
    /// value (`parser.bytes` is the row); `body` moves past the value and returns true, or returns
    /// false to have it skipped. False if the row could not be read to its end.
    ///
    /// The one walk under `value(forKey:)`, `values(forKeys:)` and `forEachMember`. A row is
    /// valid compact JSON by construction, so skipped members are not validated again.
    func walkMembers(
        _ body: (_ name: Range<Int>, _ nameHasEscape: Bool, _ parser: inout JSONParser) throws(CoreError) -> Bool
    ) -> Bool {
        bytes.withUnsafeBytes { raw in
            var parser = JSONParser(raw)
            guard !parser.atEnd, parser.peek == UInt8(ascii: "{") else { return false }
            parser.position += 1
            do throws(CoreError) {
                parser.skipWhitespace()
                if !parser.atEnd, parser.peek == UInt8(ascii: "}") { return true }
                while true {
                    parser.skipWhitespace()
                    let nameStart = parser.position + 1
                    let nameHasEscape = parser.skipTrustedString()
                    let name = nameStart..<max(nameStart, parser.position - 1)
                    parser.skipWhitespace()
                    try parser.expect(UInt8(ascii: ":"), "':'")
                    parser.skipWhitespace()
                    if try !body(name, nameHasEscape, &parser) { parser.skipTrustedValue() }
                    parser.skipWhitespace()
                    guard !parser.atEnd, parser.peek == UInt8(ascii: ",") else { return true }
                    parser.position += 1
                }
            } catch {
                return false
            }
        }
    }

    /// The row with a member `key` put first; for a key the row does not have.
    public func adding(_ key: String, _ value: JSONValue) -> EntityRow {
        var writer = JSONWriter(capacity: bytes.count + key.utf8.count + 32)
        writer.raw("{")
        writer.string(key)
        writer.raw(":")
        writer.write(value)
        if bytes.count > 2 {
            writer.raw(",")
            writer.raw(bytes.dropFirst())
        } else {
            writer.raw("}")
        }
        return EntityRow(trusted: writer.bytes)
    }

    /// The row's JSON text.
    public var text: String { String(decoding: bytes, as: UTF8.self) }
}
