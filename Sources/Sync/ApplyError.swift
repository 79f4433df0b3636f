public import TributaryCore

/// A batch was refused: which record (0-based index in the batch), which field, and why.
/// Nothing of the batch was written.
public struct ApplyError: Error, Sendable, CustomStringConvertible {
    public var index: Int
    public var cause: CoreError

    public init(index: Int, cause: CoreError) {
        self.index = index
        self.cause = cause
    }

    public var code: CoreError.Code { cause.code }
    public var field: String? { cause.field }

    public var description: String { "record \(index): \(cause)" }
}
