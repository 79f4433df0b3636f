/// The position of a change in one node's log: assigned at append, strictly increasing, never reused.
///
/// The same id space is the sync cursor (`lastSyncedPush`, `lastSyncedPull`), every projection's
/// checkpoint, the WebSocket resume token and the `trilium-max-entity-change-id` header, so there
/// is never a second position type to translate to.
public struct EntityChangeID: RawRepresentable, Strideable, Hashable, Sendable, Codable,
    CustomStringConvertible, ExpressibleByIntegerLiteral
{
    public var rawValue: UInt64

    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public init(integerLiteral value: UInt64) { self.rawValue = value }

    /// The position before the first change: "nothing seen yet".
    public static let zero = EntityChangeID(0)
    /// The largest id a peer or a client may send; ids travel as JSON numbers, which are exact
    /// only up to 2^53 in JavaScript.
    public static let maxWire = EntityChangeID(9_007_199_254_740_991)

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { String(rawValue) }

    public func distance(to other: EntityChangeID) -> Int64 {
        Int64(bitPattern: other.rawValue &- rawValue)
    }

    public func advanced(by n: Int64) -> EntityChangeID {
        EntityChangeID(UInt64(bitPattern: Int64(bitPattern: rawValue) &+ n))
    }

    /// The id after this one.
    public var next: EntityChangeID { EntityChangeID(rawValue + 1) }

    public init(from decoder: any Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(UInt64.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}
