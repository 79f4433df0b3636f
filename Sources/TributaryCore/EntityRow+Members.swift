/// One top-level member of a row, as views read it: no `JSONValue` is built. Its buffers point
/// into the row and are valid only inside the `forEachMember` call that passed it.
public struct RowMember {
    public enum Kind: Sendable, Equatable {
        case null, bool(Bool), number, string, container
    }

    public let kind: Kind
    /// The value's JSON text as stored (quotes and escapes included for strings).
    public let raw: UnsafeRawBufferPointer
    /// For a string, its content with escapes resolved (UTF-8, validated when the row was
    /// written); for a number, its digits; otherwise `raw`.
    public let text: UnsafeRawBufferPointer

    init(kind: Kind, raw: UnsafeRawBufferPointer, text: UnsafeRawBufferPointer) {
        self.kind = kind
        self.raw = raw
        self.text = text
    }
}

extension EntityRow {
    /// Calls `body` with each top-level member's name (escapes resolved) and value, in order.
    /// A repeated name comes once per occurrence; the caller keeps the last, as `JSON.parse` does.
    ///
    /// Not generic over a thrown error on purpose: called from other modules for every projected
    /// row, a generic walker was not specialized there and instantiated its metadata per call.
    public func forEachMember(_ body: (_ name: UnsafeRawBufferPointer, _ value: RowMember) -> Void) {
        // A stored row is one compact, valid JSON object (checked when written, checksummed
        // since); a parse failure ends the walk rather than being reported.
        _ = walkMembers { nameRange, nameHasEscape, parser throws(CoreError) in
            guard !parser.atEnd else { return false }
            var name = JSONParser.StringContent.slice(nameRange)
            if nameHasEscape {
                var nameParser = JSONParser(parser.bytes, position: nameRange.lowerBound - 1)
                name = try nameParser.readTrustedString()
            }
            let start = parser.position
            let kind: RowMember.Kind
            var text: JSONParser.StringContent?
            switch parser.peek {
            case UInt8(ascii: "\""):
                kind = .string
                text = try parser.readTrustedString()
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                kind = .container
                parser.skipTrustedValue()
            case UInt8(ascii: "t"), UInt8(ascii: "f"), UInt8(ascii: "n"):
                kind = parser.peek == UInt8(ascii: "n") ? .null : .bool(parser.peek == UInt8(ascii: "t"))
                parser.skipTrustedValue()
            default:
                kind = .number
                parser.skipTrustedValue()
            }
            let raw = parser.bytes
            let value = UnsafeRawBufferPointer(rebasing: raw[start..<parser.position])
            name.withBytes(in: raw) { nameBytes in
                (text ?? .slice(start..<parser.position)).withBytes(in: raw) { textBytes in
                    body(nameBytes, RowMember(kind: kind, raw: value, text: textBytes))
                }
            }
            return true
        }
    }
}

extension JSONParser {
    /// A string's content: a range of the input when it has no escapes, else the decoded bytes.
    enum StringContent {
        case slice(Range<Int>)
        case decoded([UInt8])

        func withBytes<R>(in input: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> R) -> R {
            switch self {
            case .slice(let range): return body(UnsafeRawBufferPointer(rebasing: input[range]))
            case .decoded(let bytes): return bytes.withUnsafeBytes(body)
            }
        }
    }
}
