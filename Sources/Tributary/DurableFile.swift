import EventLog
import Glibc

/// Creates `path` holding `bytes`, never replacing a file (`O_EXCL`), and on disk when this
/// returns, its directory entry included (credentials, and their copy in a backup).
/// - Returns: false when `path` already exists.
/// - Throws: `failure` of "cannot create/write PATH: REASON".
func createDurably(_ path: String, _ bytes: [UInt8], mode: mode_t, failure: (String) -> any Error) throws -> Bool {
    let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
    guard fd >= 0 else {
        if errno == EEXIST { return false }
        throw failure("cannot create \(path): \(String(cString: strerror(errno)))")
    }
    defer { close(fd) }
    guard bytes.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == bytes.count, fsync(fd) == 0 else {
        throw failure("cannot write \(path): \(String(cString: strerror(errno)))")
    }
    // Without this a power loss can keep the file's bytes but lose its name.
    let directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
    do {
        try syncToDisk(directory.isEmpty ? "/" : directory)
    } catch {
        throw failure(error.description)
    }
    return true
}
