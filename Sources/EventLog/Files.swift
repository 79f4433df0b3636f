import Glibc

// File-system steps the log needs, shared with the composition root (credentials, backups) so
// each is written once with an error that names the path and the reason.

/// fsync of a file or a directory (for the entries in it), with an error naming it.
package func syncToDisk(_ path: String) throws(EventLogError) {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0, fsync(fd) == 0 else {
        let reason = String(cString: strerror(errno))
        if fd >= 0 { Glibc.close(fd) }
        throw EventLogError(.storage, "cannot sync \(path): \(reason)")
    }
    Glibc.close(fd)
}

/// `mkdir -p`, with an error that names the directory and the reason.
package func makeDirectories(_ path: String) throws(EventLogError) {
    var partial = path.hasPrefix("/") ? "" : "."
    for component in path.split(separator: "/") {
        partial += "/" + component
        guard mkdir(partial, 0o755) != 0 else { continue }
        guard errno == EEXIST else {
            throw EventLogError(.storage, "cannot create \(partial): \(String(cString: strerror(errno)))")
        }
        var info = stat()
        if stat(partial, &info) == 0, info.st_mode & S_IFMT != S_IFDIR {
            throw EventLogError(.storage, "cannot create \(partial): a file that is not a directory is in the way")
        }
    }
}
