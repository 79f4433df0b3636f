import Glibc

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
        var wanted = key
        return wanted.withUTF8 { wantedBytes in
            bytes.withUnsafeBytes { raw -> JSONValue? in
                var parser = JSONParser(raw)
                guard !parser.atEnd, parser.peek == UInt8(ascii: "{") else { return nil }
                parser.position += 1
                var found: JSONValue?
                do {
                    parser.skipWhitespace()
                    if !parser.atEnd, parser.peek == UInt8(ascii: "}") { return nil }
                    while true {
                        parser.skipWhitespace()
                        let nameStart = parser.position + 1
                        try parser.skipString()
                        // Names with escapes never match; Trilium's column names have none.
                        let name = UnsafeRawBufferPointer(rebasing: raw[nameStart..<(parser.position - 1)])
                        parser.skipWhitespace()
                        try parser.expect(UInt8(ascii: ":"), "':'")
                        parser.skipWhitespace()
                        if name.count == wantedBytes.count,
                            name.count == 0 || memcmp(name.baseAddress!, wantedBytes.baseAddress!, name.count) == 0
                        {
                            found = try parser.parseValue()
                        } else {
                            try parser.skipValue()
                        }
                        parser.skipWhitespace()
                        guard !parser.atEnd, parser.peek == UInt8(ascii: ",") else { return found }
                        parser.position += 1
                    }
                } catch {
                    return nil
                }
            }
        }
    }

    /// The row's JSON text.
    public var text: String { String(decoding: bytes, as: UTF8.self) }
}
