import GRDB
import GRDBSQLite

/// A cached statement bound and stepped through SQLite's own calls. Rebuilding views writes
/// millions of rows, and building GRDB argument arrays for each cost more than SQLite's work;
/// this keeps the raw handle inside Projections (docs/decisions/0007).
struct RowStatement {
    private let statement: Statement
    private let db: Database
    private var handle: OpaquePointer { statement.sqliteStatement }
    /// SQLite copies the bytes before the bind call returns.
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    init(_ db: Database, sql: String) throws {
        self.db = db
        statement = try db.cachedStatement(sql: sql)
    }

    /// Clears the previous row's values (parameters are 1-based).
    func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    func bindNull(_ index: Int) { sqlite3_bind_null(handle, Int32(index)) }
    func bind(_ index: Int, _ value: Int64) { sqlite3_bind_int64(handle, Int32(index), value) }
    func bind(_ index: Int, _ value: Double) { sqlite3_bind_double(handle, Int32(index), value) }

    func bindText(_ index: Int, _ utf8: UnsafeRawBufferPointer) {
        guard let base = utf8.baseAddress, !utf8.isEmpty else {
            // An empty string, not NULL: SQLite binds NULL for a null pointer.
            sqlite3_bind_text(handle, Int32(index), "", 0, Self.transient)
            return
        }
        sqlite3_bind_text(
            handle, Int32(index), base.assumingMemoryBound(to: CChar.self), Int32(utf8.count), Self.transient)
    }

    func bindText(_ index: Int, _ text: String) {
        var text = text
        text.withUTF8 { bindText(index, UnsafeRawBufferPointer($0)) }
    }

    func bindBlob(_ index: Int, _ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else {
            sqlite3_bind_zeroblob(handle, Int32(index), 0)
            return
        }
        sqlite3_bind_blob(handle, Int32(index), base, Int32(bytes.count), Self.transient)
    }

    /// Binds a GRDB value (defaults, rare values).
    func bind(_ index: Int, _ value: DatabaseValue) {
        switch value.storage {
        case .null: bindNull(index)
        case .int64(let i): bind(index, i)
        case .double(let d): bind(index, d)
        case .string(let s): bindText(index, s)
        case .blob(let data): data.withUnsafeBytes { bindBlob(index, $0) }
        }
    }

    /// Runs the statement once.
    func step() throws {
        let code = sqlite3_step(handle)
        guard code == SQLITE_DONE else {
            sqlite3_reset(handle)
            throw DatabaseError(
                resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(db.sqliteConnection)),
                sql: statement.sql)
        }
    }
}
