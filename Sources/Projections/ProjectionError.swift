/// The error of the Projections module, with what to do about it.
public struct ProjectionError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// `waitFor` ran out of time.
        public static let timeout = Code("timeout")
        /// A view name nobody projects.
        public static let unknownView = Code("unknownView")
        /// A change could not be projected (its row is not valid JSON, …).
        public static let badChange = Code("badChange")
        /// The disk under a views database (or its copy) is full.
        public static let diskFull = Code("diskFull")
        /// Any other SQLite failure (its message included).
        public static let storage = Code("storage")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
