import Crypto
import Foundation

/// Trilium's content hashes (trilium-protocol.md §2.3, §3.10), bit for bit.
///
/// Receivers never recompute a hash — they keep the sender's — but hashes computed here for local
/// writes must equal what Trilium computes for the same row, or identical content would look
/// different to the content-hash check and be re-sent forever.
public enum ContentHash {
    /// Trilium's `utils.hash`: Unicode NFC, SHA-1 over UTF-8, standard base64 (28 characters).
    public static func sha1Base64(_ text: String) -> String {
        var hasher = Insecure.SHA1()
        var text = text
        text.withUTF8 { hasher.updateNFC($0) }
        return Data(hasher.finalize()).base64EncodedString()
    }

    /// `text` in Unicode NFC.
    static func nfc(_ text: String) -> String {
        var text = text
        var out: [UInt8] = []
        text.withUTF8 { bytes in normalizing(bytes) { out.append(contentsOf: $0) } }
        return String(decoding: out, as: UTF8.self)
    }

    /// Hands `sink` the NFC form of the well-formed UTF-8 `bytes`, in runs, copying nothing that
    /// normalization leaves alone. Only the stretches that Unicode's quick check does not pass go
    /// through Foundation's normalizer (slow on long strings: a binary blob decoded as UTF-8 is
    /// kilobytes of U+FFFD with the odd combining mark). Text splits into stretches that normalize
    /// independently just before each ASCII character: ASCII characters are starters that never
    /// combine with what precedes them (UAX #15), though one may combine with what follows.
    static func normalizing(_ bytes: UnsafeBufferPointer<UInt8>, into sink: (UnsafeBufferPointer<UInt8>) -> Void) {
        if belowCombiningMarks(bytes) || isNFC(bytes) { return sink(bytes) }
        // The quick check's "maybe" is usually a combining mark that has nothing to combine with.
        var copied = 0
        var start = 0
        while start < bytes.count {
            var end = start + 1
            while end < bytes.count && bytes[end] >= 0x80 { end += 1 }
            let piece = UnsafeBufferPointer(rebasing: bytes[start..<end])
            if end - start > 1, !belowCombiningMarks(piece), !isNFC(piece) {
                var normalized = String(decoding: piece, as: UTF8.self).precomposedStringWithCanonicalMapping
                if !normalized.utf8.elementsEqual(piece) {
                    sink(UnsafeBufferPointer(rebasing: bytes[copied..<start]))
                    normalized.withUTF8(sink)
                    copied = end
                }
            }
            start = end
        }
        sink(UnsafeBufferPointer(rebasing: bytes[copied...]))
    }

    /// Whether every character of `utf8` is below U+0300 or is U+FFFD: starters that never
    /// compose with what precedes them and are in NFC as they are, so the stretch needs no check.
    /// The common case of binary blob content decoded as UTF-8: replacement characters and the
    /// odd Latin-1 letter, cut into thousands of stretches by the ASCII bytes between them.
    private static func belowCombiningMarks(_ utf8: UnsafeBufferPointer<UInt8>) -> Bool {
        var i = 0
        while i < utf8.count {
            let b = utf8[i]
            if b < 0xCC {  // ASCII, a continuation byte, or the lead of U+0080-U+02FF
                i += 1
            } else if b == 0xEF && i + 2 < utf8.count && utf8[i + 1] == 0xBF && utf8[i + 2] == 0xBD {
                i += 3
            } else {
                return false
            }
        }
        return true
    }

    private static func isNFC(_ utf8: UnsafeBufferPointer<UInt8>) -> Bool {
        // Only ever given well-formed UTF-8: a Swift string's, a repaired blob's, or a piece of
        // either cut just before an ASCII byte. Validating again cost a third of a blob's hash.
        var span = unsafe UTF8Span(unchecked: utf8.span)
        return span.checkForNFC(quickCheck: true)
    }

    /// An entity's `hash`: `"|"`-joined JavaScript string forms of its hashed properties, plus
    /// `"|deleted"` when deleted, hashed and cut to 10 characters. Blobs use ``blobHash``;
    /// `note_reordering` has the fixed hash `"N/A"`.
    ///
    /// - Parameter isDeleted: whether to add the deleted suffix; by default the row's own
    ///   `isDeleted` decides.
    /// - Throws: `CoreError` for a blob whose content is not base64 text.
    public static func entityHash(_ name: EntityName, row: JSONObject, isDeleted: Bool? = nil) throws(CoreError)
        -> String
    {
        let fields = hashedFields[name]!
        return try entityHash(name, fields, isDeleted: isDeleted, values: fields.names.map { row[$0] })
    }

    /// ``entityHash(_:row:isDeleted:)`` reading only the members it needs of the row's bytes, in
    /// one pass. Names are matched as bytes: a name written with escapes is not found.
    public static func entityHash(_ name: EntityName, row: EntityRow, isDeleted: Bool? = nil) throws(CoreError)
        -> String
    {
        let fields = hashedFields[name]!
        return try entityHash(name, fields, isDeleted: isDeleted, values: row.values(forKeys: fields.utf8Names))
    }

    /// `values` are the row's values of `fields.names`, in order.
    private static func entityHash(_ name: EntityName, _ fields: HashedFields, isDeleted: Bool?, values: [JSONValue?])
        throws(CoreError) -> String
    {
        switch name {
        case .noteReordering:
            return "N/A"
        case .blobs:
            guard case .string(let blobId)? = values[0] else {
                throw CoreError(.missingField, "a blob row needs its blobId", field: "entity.blobId")
            }
            guard case .string(let content)? = values[1] else {
                throw CoreError(.missingField, "a blob row needs its content (base64)", field: "entity.content")
            }
            return try blobHash(blobId: blobId, base64Content: content)
        default:
            var text = ""
            text.reserveCapacity(256)
            for i in 0..<fields.isBoolean.count {
                text += "|"
                var value = values[i]
                // BAttribute keeps `row.value || ""`: any falsy value hashes as the empty string.
                if i == fields.falsyAsEmpty && !(value?.isTruthy ?? false) { value = .string("") }
                if fields.isBoolean[i] {
                    text += isTruthy(value) ? "true" : "false"
                } else {
                    text += javaScriptString(value)
                }
            }
            if isDeleted ?? isTruthy(values[fields.isBoolean.count]) { text += "|deleted" }
            return String(sha1Base64(text).prefix(10))
        }
    }

    /// What an entity's hash reads: its hashed properties in order, then `isDeleted`.
    struct HashedFields {
        let names: [String]
        let utf8Names: [[UInt8]]
        /// For each hashed property, whether it hashes as a boolean.
        let isBoolean: [Bool]
        /// The property whose falsy values hash as "" (BAttribute's `value`), if any.
        let falsyAsEmpty: Int?

        init(_ name: EntityName) {
            names = name.hashedProperties + ["isDeleted"]
            utf8Names = names.map { Array($0.utf8) }
            isBoolean = name.hashedProperties.map { name.booleanProperties.contains($0) }
            falsyAsEmpty = name == .attributes ? name.hashedProperties.firstIndex(of: "value") : nil
        }
    }

    /// Worked out once: every local write hashes its row.
    private static let hashedFields: [EntityName: HashedFields] = Dictionary(
        uniqueKeysWithValues: EntityName.allCases.map { ($0, HashedFields($0)) })

    /// A blob's hash: `utils.hash(blobId + "|" + content)`, not truncated. `content` is the text
    /// Trilium holds; on the wire (and in our rows) it travels as base64 of its UTF-8 bytes.
    public static func blobHash(blobId: String, base64Content: String) throws(CoreError) -> String {
        guard let bytes = Data(base64Encoded: base64Content) else {
            throw CoreError(.invalidValue, "blob content must be base64", field: "entity.content")
        }
        // Node's Buffer.toString() decodes UTF-8 replacing invalid sequences, as String(decoding:)
        // does, but that is slow on binary content, where nearly every byte is one.
        let content = bytes.withUnsafeBytes { repairingUTF8($0) }
        return content.withUnsafeBufferPointer { blobHash(blobId: blobId, utf8: $0) }
    }

    public static func blobHash(blobId: String, content: String) -> String {
        var content = content
        return content.withUTF8 { blobHash(blobId: blobId, utf8: $0) }
    }

    private static func blobHash(blobId: String, utf8 content: UnsafeBufferPointer<UInt8>) -> String {
        var hasher = Insecure.SHA1()
        // An ASCII "|" never combines with what precedes it, so the parts normalize apart.
        var prefix = blobId + "|"
        prefix.withUTF8 { hasher.updateNFC($0) }
        hasher.updateNFC(content)
        return Data(hasher.finalize()).base64EncodedString()
    }

    /// `bytes` as well-formed UTF-8, each maximal ill-formed subpart replaced by U+FFFD (Unicode
    /// §3.9, the WHATWG decoder's rule) — what Node's `Buffer.toString()` and Swift's
    /// `String(decoding:as:)` give, byte for byte.
    static func repairingUTF8(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        let count = bytes.count
        // At worst every byte becomes a three-byte U+FFFD.
        return [UInt8](unsafeUninitializedCapacity: count * 3) { out, written in
            var o = 0
            var i = 0
            while i < count {
                let lead = bytes[i]
                if lead < 0x80 {
                    out[o] = lead
                    o += 1
                    i += 1
                    continue
                }
                // The sequence's length and the range its second byte must fall in (Table 3-7).
                var low: UInt8 = 0x80
                var high: UInt8 = 0xBF
                let length: Int
                switch lead {
                case 0xC2...0xDF: length = 2
                case 0xE0: (length, low) = (3, 0xA0)
                case 0xE1...0xEC, 0xEE...0xEF: length = 3
                case 0xED: (length, high) = (3, 0x9F)
                case 0xF0: (length, low) = (4, 0x90)
                case 0xF1...0xF3: length = 4
                case 0xF4: (length, high) = (4, 0x8F)
                default: length = 1
                }
                var end = i + 1
                while end < i + length && end < count && bytes[end] >= low && bytes[end] <= high {
                    (low, high) = (0x80, 0xBF)
                    end += 1
                }
                if length > 1 && end == i + length {
                    while i < end {
                        out[o] = bytes[i]
                        o += 1
                        i += 1
                    }
                } else {
                    (out[o], out[o + 1], out[o + 2]) = (0xEF, 0xBF, 0xBD)
                    o += 3
                    i = end
                }
            }
            written = o
        }
    }

    /// A sector digest of the content-hash check: each entity's `hash` followed by `0`/`1` for
    /// isErased, in entityId order, hashed (not truncated).
    public static func sectorDigest(_ entries: some Sequence<(hash: String, isErased: Bool)>) -> String {
        var text = ""
        for entry in entries {
            text += entry.hash
            text += entry.isErased ? "1" : "0"
        }
        return sha1Base64(text)
    }

    static func isTruthy(_ value: JSONValue?) -> Bool {
        value?.isTruthy ?? false
    }

    /// JavaScript's `String(value)` for a row value (`undefined` when the column is absent).
    static func javaScriptString(_ value: JSONValue?) -> String {
        switch value {
        case nil: "undefined"
        case .null?: "null"
        case .bool(let b)?: b ? "true" : "false"
        case .number(let text)?: javaScriptNumber(text)
        case .string(let s)?: s
        case .array(let elements)?:
            elements.map { e in
                switch e {
                case .null: ""
                default: javaScriptString(e)
                }
            }.joined(separator: ",")
        case .object?: "[object Object]"
        }
    }

    /// ECMAScript Number::toString of a JSON number literal.
    static func javaScriptNumber(_ literal: String) -> String {
        if let i = Int64(literal), i.magnitude < 1 << 53 { return String(i) }
        guard let d = Double(literal) else { return literal }
        if d.isNaN { return "NaN" }
        if d.isInfinite { return d < 0 ? "-Infinity" : "Infinity" }
        if d == 0 { return "0" }
        // Swift prints the shortest round-trip digits, as JavaScript does; only the layout differs.
        var text = d.magnitude.description
        var exponent = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            exponent = Int(text[text.index(after: e)...]) ?? 0
            text = String(text[..<e])
        }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        let intPart = String(parts[0])
        let fracPart = parts.count > 1 ? String(parts[1]) : ""
        var digits = intPart + fracPart
        var n = intPart.count + exponent  // value = 0.digits × 10^n
        while digits.hasPrefix("0") && digits.count > 1 {
            digits.removeFirst()
            n -= 1
        }
        while digits.hasSuffix("0") && digits.count > 1 { digits.removeLast() }
        let k = digits.count
        let body: String
        if k <= n && n <= 21 {
            body = digits + String(repeating: "0", count: n - k)
        } else if 0 < n && n <= 21 {
            body = String(digits.prefix(n)) + "." + String(digits.dropFirst(n))
        } else if -6 < n && n <= 0 {
            body = "0." + String(repeating: "0", count: -n) + digits
        } else {
            let e = n - 1
            let sign = e < 0 ? "-" : "+"
            let mantissa = k == 1 ? digits : String(digits.prefix(1)) + "." + String(digits.dropFirst())
            body = mantissa + "e" + sign + String(abs(e))
        }
        return d < 0 ? "-" + body : body
    }
}

extension EntityName {
    /// The properties Trilium's `generateHash` covers, in order (`hashedProperties`).
    public var hashedProperties: [String] {
        switch self {
        case .notes: ["noteId", "title", "isProtected", "type", "mime", "blobId"]
        case .branches: ["branchId", "noteId", "parentNoteId", "prefix"]
        case .attributes: ["attributeId", "noteId", "type", "name", "value", "isInheritable"]
        case .revisions:
            [
                "revisionId", "noteId", "title", "isProtected", "dateLastEdited", "dateCreated",
                "utcDateLastEdited", "utcDateCreated", "utcDateModified", "blobId",
            ]
        case .attachments:
            ["attachmentId", "ownerId", "role", "mime", "title", "blobId", "utcDateScheduledForErasureSince"]
        case .etapiTokens: ["etapiTokenId", "name", "tokenHash", "utcDateCreated", "utcDateModified", "isDeleted"]
        case .options: ["name", "value"]
        case .blobs: ["blobId", "content"]
        case .noteReordering: []
        }
    }

    /// Hashed properties that Trilium holds as booleans in memory (`!!row.x`), so `1` hashes as
    /// `true`.
    var booleanProperties: Set<String> {
        switch self {
        case .notes, .revisions: ["isProtected"]
        case .attributes: ["isInheritable"]
        case .etapiTokens: ["isDeleted"]
        default: []
        }
    }
}

extension JSONValue {
    /// JavaScript truthiness (`!!value`), how Trilium turns 0/1 columns into booleans.
    public var isTruthy: Bool {
        switch self {
        case .null: false
        case .bool(let b): b
        case .number(let text): if let d = Double(text) { d != 0 && !d.isNaN } else { true }
        case .string(let s): !s.isEmpty
        case .array, .object: true
        }
    }
}

extension Insecure.SHA1 {
    /// Feeds the NFC form of the well-formed UTF-8 `bytes`, as it is normalized.
    mutating func updateNFC(_ bytes: UnsafeBufferPointer<UInt8>) {
        ContentHash.normalizing(bytes) { update(bufferPointer: UnsafeRawBufferPointer($0)) }
    }
}
