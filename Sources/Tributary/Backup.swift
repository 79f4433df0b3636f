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
    ///
    /// The copy is written into a hidden directory beside `destination` and renamed to it once
    /// complete, so a failed or killed backup never leaves a `destination` that looks whole.
    /// Backups into one parent directory take turns (an `flock` on the parent), so the hidden
    /// directories a killed backup left there are known to be dead and are removed.
    /// - Parameters:
    ///   - phase: told what is being copied ("the log"), for a long backup's display.
    ///   - waiting: told the parent directory when another backup into it runs, before waiting.
    public func backup(
        to destination: String, phase: (String) -> Void = { _ in }, waiting: (String) -> Void = { _ in }
    ) throws -> BackupSummary {
        let files = FileManager.default
        var isDirectory: ObjCBool = false
        if files.fileExists(atPath: destination, isDirectory: &isDirectory) {
            guard isDirectory.boolValue, (try files.contentsOfDirectory(atPath: destination)).isEmpty else {
                throw StoreError(message: "\(destination) exists and is not an empty directory; nothing was written")
            }
        }
        let target = URL(fileURLWithPath: destination)
        let parent = target.deletingLastPathComponent().path
        try makeDirectories(parent)
        let turn = try BackupTurn(parent, waiting: { waiting(parent) })
        defer { turn.release() }
        try turn.removeAbandonedCopies()
        let staging = parent + "/" + BackupTurn.stagingName(for: target.lastPathComponent)
        try files.createDirectory(atPath: staging, withIntermediateDirectories: false)
        var summary = BackupSummary(head: .zero, logBytes: 0, viewsBytes: nil, credentials: false)
        do {
            if let views {
                phase("views")
                let path = ViewStore.path(inDataDirectory: staging)
                try views.backup(to: path)
                summary.viewsBytes = fileSize(path)
            }
            phase("log")
            try log.copy(to: Store.logPath(staging))
            summary.logBytes = fileSize(Store.logPath(staging) + "/data.mdb") ?? 0
            if let bytes = files.contents(atPath: Credentials.path(inDataDirectory: dataDirectory)) {
                // The staging directory is new: nothing can be there already.
                _ = try createDurably(
                    Credentials.path(inDataDirectory: staging), Array(bytes), mode: 0o600,
                    failure: { StoreError(message: $0) })
                summary.credentials = true
            }
            // Opening the copy proves it is a log; its head is what it holds.
            var configuration = EntityChangeLog.Configuration()
            configuration.readOnly = true
            let copy = try EntityChangeLog(
                directory: Store.logPath(staging), configuration: configuration, logger: logger)
            summary.head = copy.head
            copy.close()
            // The staging directory's own entries (log/, views.sqlite, credentials.json) must be on
            // disk before its name is.
            try syncToDisk(staging)
            // rename(2) replaces an empty directory, and only an empty one.
            guard rename(staging, destination) == 0 else {
                throw StoreError(
                    message: "cannot rename the copy to \(destination): \(String(cString: strerror(errno)))")
            }
            try syncToDisk(parent)
        } catch {
            try? files.removeItem(atPath: staging)
            throw error
        }
        return summary
    }
}

/// A data directory that cannot be used as asked.
public struct StoreError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// One backup at a time into a parent directory: an exclusive `flock` on the directory itself,
/// released by the kernel when the process dies, so a staging directory found while holding it
/// belongs to a backup that was killed.
private struct BackupTurn {
    let parent: String
    private let fd: Int32

    init(_ parent: String, waiting: () -> Void) throws {
        self.parent = parent
        fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw StoreError(message: "cannot open \(parent): \(String(cString: strerror(errno)))") }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            waiting()
            guard flock(fd, LOCK_EX) == 0 else {
                let reason = String(cString: strerror(errno))
                close(fd)
                throw StoreError(message: "cannot lock \(parent) for the backup: \(reason)")
            }
        }
    }

    func release() { close(fd) }

    /// Removes the staging directories of killed backups: hidden, named `.NAME.partial-XXXXXXXX`.
    func removeAbandonedCopies() throws {
        let files = FileManager.default
        for name in try files.contentsOfDirectory(atPath: parent) where Self.isStagingName(name) {
            try files.removeItem(atPath: parent + "/" + name)
        }
    }

    /// A new staging directory's name for `destination`: `.NAME.partial-XXXXXXXX`.
    static func stagingName(for destination: String) -> String {
        "." + destination + stagingMarker + RandomID.make(length: stagingSuffixLength)
    }

    static func isStagingName(_ name: String) -> Bool {
        let parts = name.split(separator: stagingMarker, omittingEmptySubsequences: false)
        guard name.hasPrefix("."), parts.count == 2, parts[0].count > 1, parts[1].count == stagingSuffixLength
        else { return false }
        return parts[1].allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) }
    }

    private static let stagingMarker = ".partial-"
    private static let stagingSuffixLength = 8
}

private func fileSize(_ path: String) -> Int? {
    var info = stat()
    return stat(path, &info) == 0 ? Int(info.st_size) : nil
}
