internal import CLMDB

/// A read-only snapshot of the environment (`MDB_RDONLY`, `MDB_NOTLS`).
///
/// - Important: Keep it short (one page of a range): a reader pins the pages it can see, so a
///   long-lived one makes the file grow. Never open a second transaction on the same thread while
///   one is open: the gate is not recursive and a waiting resize would deadlock it.
struct ReadTransaction: ~Copyable {
    let handle: OpaquePointer
    private let gate: Unmanaged<ReadersWriterGate>

    init(_ env: Environment) throws(LMDBError) {
        while true {
            env.gate.lockShared()
            if env.isClosed {
                env.gate.unlockShared()
                throw .closed
            }
            var txn: OpaquePointer?
            let rc = mdb_txn_begin(env.rawHandle, nil, UInt32(MDB_RDONLY), &txn)
            if rc == MDB_MAP_RESIZED {
                // Another process grew the map: adopt its size and try again (lmdb.h).
                env.gate.unlockShared()
                try env.resize(to: 0)
                continue
            }
            guard rc == 0, let txn else {
                env.gate.unlockShared()
                throw LMDBError(code: rc, operation: "mdb_txn_begin(read)")
            }
            handle = txn
            gate = Unmanaged.passUnretained(env.gate)
            return
        }
    }

    consuming func abort() {
        mdb_txn_abort(handle)
        gate.takeUnretainedValue().unlockShared()
        discard self
    }

    /// Ends the snapshot keeping the database handles it opened (lmdb.h: handles opened in a
    /// transaction are closed if it aborts).
    consuming func commit() throws(LMDBError) {
        let rc = mdb_txn_commit(handle)
        gate.takeUnretainedValue().unlockShared()
        discard self
        try check(rc, "mdb_txn_commit(read)")
    }

    deinit {
        mdb_txn_abort(handle)
        gate.takeUnretainedValue().unlockShared()
    }

    func get(_ db: Database, _ key: UnsafeRawBufferPointer) throws(LMDBError) -> UnsafeRawBufferPointer? {
        try lmdbGet(handle, db, key)
    }

    /// Visits entries in key order from the first key ≥ `start` (or the first entry) until `body`
    /// returns false.
    func scan(
        _ db: Database, from start: UnsafeRawBufferPointer?,
        _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        try lmdbScan(handle, db, from: start, body)
    }

    /// The last entry of a database.
    func last(_ db: Database) throws(LMDBError) -> (key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)? {
        try lmdbLast(handle, db)
    }
}

/// The one write transaction. Runs on the log's writer queue only.
struct WriteTransaction: ~Copyable {
    let handle: OpaquePointer
    private let gate: Unmanaged<ReadersWriterGate>

    struct PutFlags: OptionSet {
        let rawValue: UInt32
        /// The key sorts after every existing key (the log's ids): LMDB checks it and skips the search.
        static let append = PutFlags(rawValue: UInt32(MDB_APPEND))
        static let noOverwrite = PutFlags(rawValue: UInt32(MDB_NOOVERWRITE))
    }

    init(_ env: Environment) throws(LMDBError) {
        env.gate.lockShared()
        if env.isClosed {
            env.gate.unlockShared()
            throw .closed
        }
        var txn: OpaquePointer?
        let rc = mdb_txn_begin(env.rawHandle, nil, 0, &txn)
        guard rc == 0, let txn else {
            env.gate.unlockShared()
            throw LMDBError(code: rc, operation: "mdb_txn_begin(write)")
        }
        handle = txn
        gate = Unmanaged.passUnretained(env.gate)
    }

    /// Commits; on failure LMDB has already freed the transaction.
    consuming func commit() throws(LMDBError) {
        let rc = mdb_txn_commit(handle)
        gate.takeUnretainedValue().unlockShared()
        discard self
        try check(rc, "mdb_txn_commit")
    }

    consuming func abort() {
        mdb_txn_abort(handle)
        gate.takeUnretainedValue().unlockShared()
        discard self
    }

    deinit {
        mdb_txn_abort(handle)
        gate.takeUnretainedValue().unlockShared()
    }

    func get(_ db: Database, _ key: UnsafeRawBufferPointer) throws(LMDBError) -> UnsafeRawBufferPointer? {
        try lmdbGet(handle, db, key)
    }

    func put(
        _ db: Database, _ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, _ flags: PutFlags = []
    ) throws(LMDBError) {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val(mv_size: value.count, mv_data: UnsafeMutableRawPointer(mutating: value.baseAddress))
        try check(mdb_put(handle, db.dbi, &k, &v, flags.rawValue), "mdb_put")
    }

    /// Reserves `size` bytes for the value and lets `fill` write them in place (`MDB_RESERVE`),
    /// saving a copy of large records.
    func putReserved(
        _ db: Database, _ key: UnsafeRawBufferPointer, size: Int, _ flags: PutFlags = [],
        _ fill: (UnsafeMutableRawBufferPointer) -> Void
    ) throws(LMDBError) {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val(mv_size: size, mv_data: nil)
        try check(mdb_put(handle, db.dbi, &k, &v, flags.rawValue | UInt32(MDB_RESERVE)), "mdb_put(reserve)")
        fill(UnsafeMutableRawBufferPointer(start: v.mv_data, count: size))
    }

    func delete(_ db: Database, _ key: UnsafeRawBufferPointer) throws(LMDBError) {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        let rc = mdb_del(handle, db.dbi, &k, nil)
        if rc == MDB_NOTFOUND { return }
        try check(rc, "mdb_del")
    }

    func last(_ db: Database) throws(LMDBError) -> (key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)? {
        try lmdbLast(handle, db)
    }

    func scan(
        _ db: Database, from start: UnsafeRawBufferPointer?,
        _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        try lmdbScan(handle, db, from: start, body)
    }

    /// Removes every entry of a database (used when an index is rebuilt from the log).
    func empty(_ db: Database) throws(LMDBError) {
        try check(mdb_drop(handle, db.dbi, 0), "mdb_drop")
    }
}

private func lmdbGet(_ txn: OpaquePointer, _ db: Database, _ key: UnsafeRawBufferPointer) throws(LMDBError)
    -> UnsafeRawBufferPointer?
{
    var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
    var v = MDB_val()
    let rc = mdb_get(txn, db.dbi, &k, &v)
    if rc == MDB_NOTFOUND { return nil }
    try check(rc, "mdb_get")
    return UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size)
}

private func lmdbLast(_ txn: OpaquePointer, _ db: Database) throws(LMDBError) -> (
    key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer
)? {
    var cursor: OpaquePointer?
    try check(mdb_cursor_open(txn, db.dbi, &cursor), "mdb_cursor_open")
    defer { mdb_cursor_close(cursor) }
    var k = MDB_val()
    var v = MDB_val()
    let rc = mdb_cursor_get(cursor, &k, &v, MDB_LAST)
    if rc == MDB_NOTFOUND { return nil }
    try check(rc, "mdb_cursor_get(last)")
    return (
        UnsafeRawBufferPointer(start: k.mv_data, count: k.mv_size),
        UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size)
    )
}

private func lmdbScan(
    _ txn: OpaquePointer, _ db: Database, from start: UnsafeRawBufferPointer?,
    _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool
) throws {
    var cursor: OpaquePointer?
    try check(mdb_cursor_open(txn, db.dbi, &cursor), "mdb_cursor_open")
    defer { mdb_cursor_close(cursor) }
    var k = MDB_val()
    var v = MDB_val()
    var rc: Int32
    if let start {
        k = MDB_val(mv_size: start.count, mv_data: UnsafeMutableRawPointer(mutating: start.baseAddress))
        rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE)
    } else {
        rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST)
    }
    while rc == 0 {
        let more = try body(
            UnsafeRawBufferPointer(start: k.mv_data, count: k.mv_size),
            UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
        if !more { return }
        rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)
    }
    if rc != MDB_NOTFOUND { try check(rc, "mdb_cursor_get") }
}

/// A non-owning view of an open transaction, for lookups shared by readers and the writer.
///
/// - Important: Valid only while the transaction that made it is open; never stored elsewhere.
struct TransactionRef {
    let handle: OpaquePointer

    func get(_ db: Database, _ key: UnsafeRawBufferPointer) throws(LMDBError) -> UnsafeRawBufferPointer? {
        try lmdbGet(handle, db, key)
    }
}

extension WriteTransaction {
    var ref: TransactionRef { TransactionRef(handle: handle) }
}

extension ReadTransaction {
    var ref: TransactionRef { TransactionRef(handle: handle) }
}
