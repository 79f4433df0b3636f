import Glibc
import Synchronization

/// Exclusive ownership of a log directory for writing: an `flock` on `writer.lock` against other
/// processes, and a path registry against a second open in this process (where `flock` on a new
/// descriptor would also fail, but LMDB's own fcntl locks would silently break — lmdb.h caveats).
final class DirectoryLock: Sendable {
    private static let openPaths = Mutex<Set<String>>([])

    let path: String
    private let fd: Int32

    /// - Throws: `EventLogError` `.alreadyOpen` or `.directoryInUse`.
    init(directory: String, exclusive: Bool) throws(EventLogError) {
        let canonical =
            realpath(directory, nil).map { p in
                defer { free(p) }
                return String(cString: p)
            } ?? directory
        let inserted = DirectoryLock.openPaths.withLock { $0.insert(canonical).inserted }
        guard inserted else {
            throw EventLogError(
                .alreadyOpen, "\(canonical) is already open in this process; open a data directory once and share it")
        }
        path = canonical
        guard exclusive else {
            fd = -1
            return
        }
        let lockPath = canonical + "/writer.lock"
        let descriptor = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            let reason = String(cString: strerror(errno))
            DirectoryLock.openPaths.withLock { _ = $0.remove(canonical) }
            throw EventLogError(.storage, "cannot open \(lockPath): \(reason)")
        }
        // A process forking a child shares our lock's open file description until the child
        // execs (O_CLOEXEC closes it only then), so a lock just released can look held for a
        // moment: retry briefly before calling the directory in use.
        var locked = flock(descriptor, LOCK_EX | LOCK_NB) == 0
        for _ in 0..<20 where !locked {
            usleep(50_000)
            locked = flock(descriptor, LOCK_EX | LOCK_NB) == 0
        }
        if !locked {
            close(descriptor)
            DirectoryLock.openPaths.withLock { _ = $0.remove(canonical) }
            throw EventLogError(
                .directoryInUse,
                "\(canonical) is open for writing by another process (writer.lock is held); stop it first, "
                    + "or use a read-only command (replay, status, verify)")
        }
        fd = descriptor
    }

    func release() {
        if fd >= 0 { close(fd) }
        DirectoryLock.openPaths.withLock { _ = $0.remove(path) }
    }
}
