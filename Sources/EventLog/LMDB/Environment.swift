internal import CLMDB
import Glibc

/// An open LMDB environment and its named databases.
///
/// - Important: LMDB handles are not thread-safe objects, so the class is `@unchecked Sendable`
///   under these rules: read transactions use `MDB_NOTLS` and may run on any thread, one at a time
///   per transaction; write transactions run only on the log's writer queue; ``resize(to:)`` and
///   ``close()`` take the gate exclusively, so no transaction is open while they run (lmdb.h:
///   `mdb_env_set_mapsize` "must be called when no transactions are active in this process").
final class Environment: @unchecked Sendable {
    private let handle: OpaquePointer
    /// Written under the exclusive gate, read under the shared one.
    private(set) var isClosed = false
    let gate = ReadersWriterGate()
    let readOnly: Bool
    private(set) var databases: [String: Database] = [:]

    struct Options {
        var mapSize: Int
        var maxReaders: UInt32 = 1024
        var maxDatabases: UInt32 = 8
        var readOnly = false
        /// Skip the fsync at commit: faster, and the last commits can be lost on a power failure.
        var noSync = false
    }

    init(path: String, options: Options, databases names: [String]) throws(LMDBError) {
        var env: OpaquePointer?
        try check(mdb_env_create(&env), "mdb_env_create")
        guard let env else { throw LMDBError(code: ENOMEM, operation: "mdb_env_create") }
        readOnly = options.readOnly
        do throws(LMDBError) {
            try check(mdb_env_set_mapsize(env, options.mapSize), "mdb_env_set_mapsize")
            try check(mdb_env_set_maxreaders(env, options.maxReaders), "mdb_env_set_maxreaders")
            try check(mdb_env_set_maxdbs(env, options.maxDatabases), "mdb_env_set_maxdbs")
            var flags = UInt32(MDB_NOTLS)
            if options.readOnly { flags |= UInt32(MDB_RDONLY) }
            if options.noSync { flags |= UInt32(MDB_NOSYNC) }
            try check(mdb_env_open(env, path, flags, 0o644), "mdb_env_open(\(path))")
        } catch {
            // lmdb.h: "the environment handle must be closed" after a failed mdb_env_open.
            mdb_env_close(env)
            throw error
        }
        // LMDB maps the file and trusts it: a page past the end of a truncated file (an
        // interrupted copy, a full disk during a restore) is a SIGBUS on first touch, not an error.
        let needed = Environment.usage(of: env).used
        var file = stat()
        if stat(path + "/data.mdb", &file) == 0, Int(file.st_size) < needed {
            mdb_env_close(env)
            throw LMDBError(
                code: MDB_CORRUPTED,
                operation: "data.mdb holds \(file.st_size) bytes but its pages reach \(needed): the file is truncated")
        }
        handle = env
        do throws(LMDBError) {
            if options.readOnly {
                let txn = try ReadTransaction(self)
                for name in names {
                    var dbi = MDB_dbi()
                    try check(
                        mdb_dbi_open(txn.handle, name, 0, &dbi),
                        "opening database '\(name)' (a file without it is not a Tributary log)")
                    databases[name] = Database(dbi: dbi)
                }
                try txn.commit()
            } else {
                let txn = try WriteTransaction(self)
                try Self.refuseForeignFile(txn, expecting: names)
                for name in names {
                    var dbi = MDB_dbi()
                    // A failure here leaves `txn` to its deinit, which aborts it.
                    try check(mdb_dbi_open(txn.handle, name, UInt32(MDB_CREATE), &dbi), "mdb_dbi_open(\(name))")
                    databases[name] = Database(dbi: dbi)
                }
                try txn.commit()
            }
        } catch {
            // Every stored property is set by now, so deinit runs after this throw: marked closed,
            // it does not close the environment a second time (a double free, which crashed
            // opening a directory whose LMDB file lacks the log's databases).
            isClosed = true
            mdb_env_close(env)
            throw error
        }
    }

    var rawHandle: OpaquePointer { handle }

    /// Throws, before anything is written, when the file holds something other than these named
    /// databases: LMDB's main database lists a file's named databases, and holds its data when it
    /// has none. Creating the log's databases there would write into another program's file.
    private static func refuseForeignFile(_ txn: borrowing WriteTransaction, expecting names: [String])
        throws(LMDBError)
    {
        var main = MDB_dbi()
        try check(mdb_dbi_open(txn.handle, nil, 0, &main), "mdb_dbi_open(main)")
        var foreign: String?
        do {
            try txn.scan(Database(dbi: main), from: nil) { key, _ in
                let name = String(decoding: key, as: UTF8.self)
                if names.contains(name) { return true }
                // Another program's keys may be binary: shown as hex rather than raw bytes.
                if key.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) {
                    foreign = "'\(name.prefix(64))'"
                } else {
                    let hex = key.prefix(16).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
                    foreign = "the binary key 0x\(hex)\(key.count > 16 ? "…" : "")"
                }
                return false
            }
        } catch {
            // The body throws nothing: whatever arrives is the cursor's LMDBError.
            throw error as? LMDBError ?? LMDBError(code: EIO, operation: "reading the file's main database")
        }
        if let foreign {
            throw LMDBError(
                code: MDB_INCOMPATIBLE,
                operation:
                    "opening the log: the file holds \(foreign), which is not one of the log's databases (not a Tributary log; nothing was written)"
            )
        }
    }

    func database(_ name: String) -> Database { databases[name]! }

    /// The current map size in bytes.
    var mapSize: Int {
        var info = MDB_envinfo()
        mdb_env_info(handle, &info)
        return info.me_mapsize
    }

    /// Bytes of the map in use (through the last page written) and the map's size.
    var usage: (used: Int, size: Int) { Environment.usage(of: handle) }

    private static func usage(of env: OpaquePointer) -> (used: Int, size: Int) {
        var info = MDB_envinfo()
        mdb_env_info(env, &info)
        var stat = MDB_stat()
        mdb_env_stat(env, &stat)
        return ((Int(info.me_last_pgno) + 1) * Int(stat.ms_psize), info.me_mapsize)
    }

    /// Writes a compacted copy of the environment, as of one read snapshot, into the existing
    /// directory `path`, which must not hold a `data.mdb` (lmdb.h: `mdb_env_copy2`, `MDB_CP_COMPACT`).
    func copy(to path: String) throws(LMDBError) {
        gate.lockShared()
        defer { gate.unlockShared() }
        guard !isClosed else { throw .closed }
        try check(mdb_env_copy2(handle, path, UInt32(MDB_CP_COMPACT)), "mdb_env_copy2(\(path))")
    }

    /// Grows (or adopts another process's larger) map size.
    func resize(to bytes: Int) throws(LMDBError) {
        gate.lockExclusive()
        defer { gate.unlockExclusive() }
        guard !isClosed else { throw .closed }
        try check(mdb_env_set_mapsize(handle, bytes), "mdb_env_set_mapsize")
    }

    /// Entries in a database.
    func count(_ db: Database, in txn: borrowing ReadTransaction) throws(LMDBError) -> Int {
        var stat = MDB_stat()
        try check(mdb_stat(txn.handle, db.dbi, &stat), "mdb_stat")
        return stat.ms_entries
    }

    func close() {
        gate.lockExclusive()
        defer { gate.unlockExclusive() }
        guard !isClosed else { return }
        isClosed = true
        mdb_env_close(handle)
    }

    deinit {
        if !isClosed { mdb_env_close(handle) }
    }
}

/// A named database inside the environment.
struct Database: Sendable {
    let dbi: UInt32
}

/// Shared for transactions, exclusive for map resizes and close. Writers are preferred so a
/// stream of short reads cannot starve a resize.
final class ReadersWriterGate: @unchecked Sendable {
    // Allocated, not a stored property passed as `&lock`: Swift promises no stable address for
    // that, and a pthread lock must never move.
    private let lock: UnsafeMutablePointer<pthread_rwlock_t>

    init() {
        lock = .allocate(capacity: 1)
        lock.initialize(to: pthread_rwlock_t())
        var attributes = pthread_rwlockattr_t()
        pthread_rwlockattr_init(&attributes)
        pthread_rwlockattr_setkind_np(&attributes, Int32(PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP))
        pthread_rwlock_init(lock, &attributes)
        pthread_rwlockattr_destroy(&attributes)
    }

    deinit {
        pthread_rwlock_destroy(lock)
        lock.deinitialize(count: 1)
        lock.deallocate()
    }

    func lockShared() { pthread_rwlock_rdlock(lock) }
    func unlockShared() { pthread_rwlock_unlock(lock) }
    func lockExclusive() { pthread_rwlock_wrlock(lock) }
    func unlockExclusive() { pthread_rwlock_unlock(lock) }
}
