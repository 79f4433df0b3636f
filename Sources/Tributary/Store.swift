public import EventLog
public import Logging
public import Sync
import TributaryCore

/// One node's data directory, opened: the log and the apply path over it.
///
/// Layout: `<data>/log/` (the LMDB event log), later `<data>/views.sqlite` and
/// `<data>/credentials.json`.
public final class Store: Sendable {
    public let dataDirectory: String
    public let log: EntityChangeLog
    public let applier: ChangeApplier

    public enum Durability: String, Sendable, CaseIterable {
        /// Every commit is fsynced before it is acknowledged (default).
        case fsync
        /// No fsync: faster; the last acknowledged commits can be lost on power failure (not on
        /// a process crash).
        case none
    }

    /// Opens `dataDirectory`, creating it unless `readOnly`.
    ///
    /// - Throws: `EventLogError` (`.directoryInUse`, `.alreadyOpen`, `.notFound`, …).
    public init(
        dataDirectory: String, readOnly: Bool = false, durability: Durability = .fsync,
        logConfiguration: EntityChangeLog.Configuration = .init(), logger: Logger
    ) throws {
        self.dataDirectory = dataDirectory
        var configuration = logConfiguration
        configuration.readOnly = readOnly
        configuration.fsync = durability == .fsync
        log = try EntityChangeLog(directory: Store.logPath(dataDirectory), configuration: configuration, logger: logger)
        applier = ChangeApplier(log: log)
    }

    public static func logPath(_ dataDirectory: String) -> String { dataDirectory + "/log" }

    public func close() { log.close() }
}
