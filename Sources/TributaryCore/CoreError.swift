/// The error of TributaryCore: bad input found while decoding or validating a change.
///
/// `message` says what is wrong and, where it helps, what was expected; `field` names the field
/// (e.g. `entityChange.utcDateChanged`) so a caller can point at the exact place.
public struct CoreError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        public static let malformedJSON = Code("malformedJSON")
        public static let missingField = Code("missingField")
        public static let wrongType = Code("wrongType")
        public static let invalidValue = Code("invalidValue")
        public static let unknownEntityName = Code("unknownEntityName")
        public static let tooLarge = Code("tooLarge")
    }

    public var code: Code
    public var message: String
    public var field: String?

    public init(_ code: Code, _ message: String, field: String? = nil) {
        self.code = code
        self.message = message
        self.field = field
    }

    public var description: String {
        if let field { return "\(field): \(message)" }
        return message
    }

    /// The same error, with its field placed under `parent` (e.g. `entityChange`).
    public func within(_ parent: String) -> CoreError {
        var copy = self
        copy.field = field.map { "\(parent).\($0)" } ?? parent
        return copy
    }
}
