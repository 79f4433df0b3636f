import EventLog
import Foundation
import Glibc
import Projections
public import TributaryCore

/// A backup is a data directory of its own: `serve --data COPY` continues from it.
extension Store {
    /// What `backup(to:)` wrote.
    public struct BackupSummary: Sendable {
        /// The newest change in the copy.
        public var head: EntityChangeID
        public var logBytes: Int
        /// nil when the source had no views yet.
        public var viewsBytes: Int?
        public var credentials: Bool
    }

    /// Copies this data directory into `destination` (created; if it exists it must be empty)
    /// while the node may go on writing, through a read-only open as well.
    ///
    /// The views are copied first and the log after, each as of one snapshot, so the copied
    /// views never run ahead of the copied log: the copy's projector catches up from their
    /// checkpoints. The credentials come along, so peers and clients keep their secrets. The copy
    /// keeps the node's instanceId — it replaces the node on restore and must not run beside it.
    /// - Parameter phase: told what is being copied, for a long backup's display.
    public func backup(to destination: String, phase: (String) -> Void = { _ in }) throws -> BackupSummary {
        let files = FileManager.default
        var isDirectory: ObjCBool = false
        if files.fileExists(atPath: destination, isDirectory: &isDirectory) {
            guard isDirectory.boolValue, (try files.contentsOfDirectory(atPath: destination)).isEmpty else {
                throw StoreError(message: "\(destination) exists and is not an empty directory; nothing was written")
            }
        }
        try files.createDirectory(atPath: destination, withIntermediateDirectories: true)
        var viewsBytes: Int?
        if let views {
            phase("views")
            let path = ViewStore.path(inDataDirectory: destination)
            try views.backup(to: path)
            viewsBytes = fileSize(path)
        }
        phase("log")
        try log.copy(to: Store.logPath(destination))
        var credentials = false
        let source = Credentials.path(inDataDirectory: dataDirectory)
        if let bytes = files.contents(atPath: source) {
            try writeNew(Credentials.path(inDataDirectory: destination), bytes, mode: 0o600)
            credentials = true
        }
        // Opening the copy proves it is a log; its head is what it holds.
        var configuration = EntityChangeLog.Configuration()
        configuration.readOnly = true
        let copy = try EntityChangeLog(
            directory: Store.logPath(destination), configuration: configuration, logger: logger)
        defer { copy.close() }
        return BackupSummary(
            head: copy.head, logBytes: fileSize(Store.logPath(destination) + "/data.mdb") ?? 0,
            viewsBytes: viewsBytes, credentials: credentials)
    }
}

/// A data directory that cannot be used as asked.
public struct StoreError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

private func fileSize(_ path: String) -> Int? {
    var info = stat()
    return stat(path, &info) == 0 ? Int(info.st_size) : nil
}

/// Creates `path` (never overwriting) with `bytes`, on disk when this returns.
private func writeNew(_ path: String, _ bytes: Data, mode: mode_t) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
    guard fd >= 0 else { throw StoreError(message: "cannot create \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    guard written == bytes.count, fsync(fd) == 0 else {
        throw StoreError(message: "cannot write \(path): \(String(cString: strerror(errno)))")
    }
}
