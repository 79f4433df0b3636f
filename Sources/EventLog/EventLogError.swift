import Glibc
public import TributaryCore

/// The error of the EventLog module: what went wrong with the log, and what to do about it.
public struct EventLogError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// A record failed its checksum or could not be decoded; `id` names it.
        public static let corruptRecord = Code("corruptRecord")
        /// An entry of the `current` or `changeIds` index could not be decoded.
        public static let corruptIndex = Code("corruptIndex")
        /// Another process has the data directory open for writing.
        public static let directoryInUse = Code("directoryInUse")
        /// This process already has the data directory open.
        public static let alreadyOpen = Code("alreadyOpen")
        /// The data directory was written by a newer format.
        public static let unsupportedFormat = Code("unsupportedFormat")
        /// The data directory does not hold a log (read-only open of a missing log).
        public static let notFound = Code("notFound")
        /// The disk is full; nothing of the failed write was stored.
        public static let diskFull = Code("diskFull")
        /// The log was closed.
        public static let closed = Code("closed")
        /// A write on a log opened read-only.
        public static let readOnly = Code("readOnly")
        /// Any other storage failure (the LMDB code and operation are in the message).
        public static let storage = Code("storage")
    }

    public var code: Code
    public var message: String
    /// The record concerned, for `.corruptRecord`.
    public var id: EntityChangeID?

    public init(_ code: Code, _ message: String, id: EntityChangeID? = nil) {
        self.code = code
        self.message = message
        self.id = id
    }

    public var description: String { message }

    static func corrupt(_ id: EntityChangeID, _ why: String) -> EventLogError {
        EventLogError(
            .corruptRecord,
            "record \(id) is corrupt: \(why); run 'tributary verify' to list every damaged record", id: id)
    }

    static func corruptIndex(_ what: String) -> EventLogError {
        EventLogError(
            .corruptIndex,
            "the log's index is damaged: \(what) cannot be decoded; 'tributary reindex' rebuilds the indexes from the log"
        )
    }

    /// - Parameter directory: where the failed write went. A full disk often surfaces as EIO from
    ///   the commit's writes or fsync rather than as ENOSPC, so an I/O error there while the disk
    ///   has almost no space left is reported as the full disk it is.
    static func storage(_ error: LMDBError, directory: String? = nil) -> EventLogError {
        if error == .closed { return EventLogError(.closed, "the log was closed") }
        if error == .corrupted {
            return EventLogError(
                .storage,
                "the log's file is damaged (\(error.operation)); restore the data directory from a backup")
        }
        var full = error == .noSpace
        var free = ""
        if error.code == EIO || error.code == ENOSPC, let directory, let bytes = availableBytes(directory) {
            free = ", \(bytes) bytes free on the disk holding \(directory)"
            full = full || bytes < 16 << 20
        }
        if full {
            return EventLogError(
                .diskFull, "the disk is full (\(error)\(free)); free space and retry, nothing was written")
        }
        return EventLogError(.storage, "storage error: \(error)")
    }

    /// Space an unprivileged writer can still use on the file system holding `path`.
    private static func availableBytes(_ path: String) -> UInt64? {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return nil }
        return UInt64(info.f_bavail) * UInt64(info.f_frsize)
    }
}
