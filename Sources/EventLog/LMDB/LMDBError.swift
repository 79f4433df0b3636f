internal import CLMDB
import Glibc

/// A failed LMDB call: its return code, the C library's message and the operation that failed.
///
/// The one funnel from C return codes to Swift errors (`check`); callers match the static codes,
/// e.g. `catch let e as LMDBError where e == .mapFull`.
struct LMDBError: Error, Equatable, CustomStringConvertible {
    let code: Int32
    let operation: String

    static let notFound = LMDBError(code: MDB_NOTFOUND, operation: "")
    static let keyExists = LMDBError(code: MDB_KEYEXIST, operation: "")
    static let mapFull = LMDBError(code: MDB_MAP_FULL, operation: "")
    static let mapResized = LMDBError(code: MDB_MAP_RESIZED, operation: "")
    static let readersFull = LMDBError(code: MDB_READERS_FULL, operation: "")
    static let noSpace = LMDBError(code: ENOSPC, operation: "")
    static let corrupted = LMDBError(code: MDB_CORRUPTED, operation: "")
    /// The environment was closed (our code, not LMDB's: no call reaches a closed handle).
    static let closed = LMDBError(code: EBADF, operation: "environment closed")

    /// Errors compare by code only, so `error == .mapFull` matches any operation.
    static func == (lhs: LMDBError, rhs: LMDBError) -> Bool { lhs.code == rhs.code }

    var message: String { String(cString: mdb_strerror(code)) }

    var description: String { "\(operation): \(message) (\(code))" }
}

@inline(__always)
func check(_ rc: Int32, _ operation: @autoclosure () -> String) throws(LMDBError) {
    if rc != 0 { throw LMDBError(code: rc, operation: operation()) }
}
