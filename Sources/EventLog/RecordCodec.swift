internal import CCRC32C
import TributaryCore

/// The on-disk form of a log record: a versioned envelope with a CRC32C over everything after it.
///
/// ```
/// [0]      format (1)
/// [1..4]   CRC32C, little-endian, of bytes [5...]
/// [5]      flags: 1 isErased, 2 isSynced, 4 has entity
/// [6]      entityName code
/// [7..14]  utcDateChanged, ms since the epoch, little-endian Int64
/// then u8-length-prefixed: entityId, hash, changeId, componentId, instanceId, originInstanceId
/// then the entity row's JSON bytes (to the end), when present
/// ```
/// Every string field is validated to at most 128 bytes before it gets here.
enum RecordCodec {
    static let format: UInt8 = 1
    static let headerSize = 15

    static func encodedSize(_ r: ChangeRecord) -> Int {
        let c = r.change
        return headerSize + 6 + c.entityId.utf8.count + c.hash.utf8.count + c.changeId.utf8.count
            + c.componentId.utf8.count + c.instanceId.utf8.count + r.originInstanceId.utf8.count
            + (r.entity?.bytes.count ?? 0)
    }

    /// Writes the record into `out`, which is exactly `encodedSize(r)` bytes.
    static func encode(_ r: ChangeRecord, into out: UnsafeMutableRawBufferPointer) {
        let c = r.change
        var p = 0
        func byte(_ b: UInt8) {
            out[p] = b
            p += 1
        }
        func text(_ s: String) {
            var s = s
            s.withUTF8 { utf8 in
                out[p] = UInt8(utf8.count)
                UnsafeMutableRawBufferPointer(rebasing: out[(p + 1)..<(p + 1 + utf8.count)])
                    .copyMemory(from: UnsafeRawBufferPointer(utf8))
                p += 1 + utf8.count
            }
        }
        byte(format)
        p += 4
        byte((c.isErased ? 1 : 0) | (c.isSynced ? 2 : 0) | (r.entity != nil ? 4 : 0))
        byte(c.entityName.code)
        withUnsafeBytes(of: c.utcDateChanged.millisecondsSinceEpoch.littleEndian) { date in
            for b in date { byte(b) }
        }
        text(c.entityId)
        text(c.hash)
        text(c.changeId)
        text(c.componentId)
        text(c.instanceId)
        text(r.originInstanceId)
        if let entity = r.entity {
            entity.bytes.withUnsafeBytes { src in
                UnsafeMutableRawBufferPointer(rebasing: out[p..<(p + src.count)]).copyMemory(from: src)
            }
            p += entity.bytes.count
        }
        precondition(p == out.count, "record size mismatch")
        let crc = tributary_crc32c(0, out.baseAddress! + 5, out.count - 5)
        withUnsafeBytes(of: crc.littleEndian) { bytes in
            for i in 0..<4 { out[1 + i] = bytes[i] }
        }
    }

    static func encode(_ r: ChangeRecord) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: encodedSize(r)) { buffer, count in
            encode(r, into: UnsafeMutableRawBufferPointer(buffer))
            count = buffer.count
        }
    }
}

/// A checked, zero-copy view of one stored record.
///
/// - Important: Valid only while the transaction it was read in is open.
struct RecordView {
    let id: EntityChangeID
    let bytes: UnsafeRawBufferPointer
    let flags: UInt8
    let nameCode: UInt8
    let date: Int64
    /// Byte ranges of the six length-prefixed strings, then where the entity starts.
    let fields: (Range<Int>, Range<Int>, Range<Int>, Range<Int>, Range<Int>, Range<Int>)
    let entityStart: Int

    /// Checks format, checksum and layout.
    ///
    /// - Throws: `EventLogError.corruptRecord` naming `id`.
    init(id: EntityChangeID, bytes: UnsafeRawBufferPointer) throws(EventLogError) {
        self.id = id
        self.bytes = bytes
        guard bytes.count >= RecordCodec.headerSize + 6 else {
            throw .corrupt(id, "\(bytes.count) bytes is shorter than a record header")
        }
        guard bytes[0] == RecordCodec.format else {
            throw .corrupt(id, "unknown record format \(bytes[0])")
        }
        var stored: UInt32 = 0
        withUnsafeMutableBytes(of: &stored) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[1..<5])) }
        let crc = tributary_crc32c(0, bytes.baseAddress! + 5, bytes.count - 5)
        guard UInt32(littleEndian: stored) == crc else {
            throw .corrupt(id, "checksum mismatch (stored \(UInt32(littleEndian: stored)), computed \(crc))")
        }
        flags = bytes[5]
        nameCode = bytes[6]
        var d: Int64 = 0
        withUnsafeMutableBytes(of: &d) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[7..<15])) }
        date = Int64(littleEndian: d)
        var p = RecordCodec.headerSize
        fields = (
            try Self.field(bytes, at: &p, id), try Self.field(bytes, at: &p, id), try Self.field(bytes, at: &p, id),
            try Self.field(bytes, at: &p, id), try Self.field(bytes, at: &p, id), try Self.field(bytes, at: &p, id)
        )
        entityStart = p
        guard EntityName(code: nameCode) != nil else { throw .corrupt(id, "unknown entity name code \(nameCode)") }
        if flags & 4 == 0 && entityStart != bytes.count { throw .corrupt(id, "trailing bytes") }
    }

    /// The length-prefixed field at `p`, moving `p` past it. (A nested function capturing `p`
    /// made every access to it dynamically checked: 12 % of a record scan's CPU samples.)
    @inline(__always)
    private static func field(_ bytes: UnsafeRawBufferPointer, at p: inout Int, _ id: EntityChangeID)
        throws(EventLogError) -> Range<Int>
    {
        guard p < bytes.count else { throw .corrupt(id, "truncated field") }
        let n = Int(bytes[p])
        guard p + 1 + n <= bytes.count else { throw .corrupt(id, "truncated field") }
        defer { p += 1 + n }
        return (p + 1)..<(p + 1 + n)
    }

    var entityName: EntityName { EntityName(code: nameCode)! }
    var isErased: Bool { flags & 1 != 0 }
    var isSynced: Bool { flags & 2 != 0 }
    var hasEntity: Bool { flags & 4 != 0 }

    func string(_ range: Range<Int>) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }

    var entityIdBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[fields.0]) }
    var changeIdBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[fields.2]) }
    var entityId: String { string(fields.0) }
    var hash: String { string(fields.1) }
    var changeId: String { string(fields.2) }
    var instanceId: String { string(fields.4) }
    var entityBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[entityStart...]) }

    var key: EntityKey { EntityKey(entityName, entityId) }

    var currentEntry: CurrentEntry {
        CurrentEntry(
            id: id, isErased: isErased, hash: hash, utcDateChanged: UTCDateTime(millisecondsSinceEpoch: date),
            isSynced: isSynced)
    }

    /// The full record, copied out of the map.
    var record: ChangeRecord {
        let change = EntityChange(
            entityName: entityName, entityId: entityId, hash: hash, isErased: isErased, changeId: changeId,
            componentId: string(fields.3), instanceId: instanceId, isSynced: isSynced,
            utcDateChanged: UTCDateTime(millisecondsSinceEpoch: date))
        return ChangeRecord(
            change: change, entity: hasEntity ? EntityRow(trusted: [UInt8](entityBytes)) : nil,
            originInstanceId: string(fields.5))
    }

    var logged: LoggedChange { LoggedChange(id: id, record: record) }
}
