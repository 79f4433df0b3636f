public import EventLog
import Foundation
public import Logging
public import Projections
public import Sync
public import TributaryCore

/// One node's data directory, opened: the log and the apply path over it.
///
/// Layout: `<data>/log/` (the LMDB event log), later `<data>/views.sqlite` and
/// `<data>/credentials.json`.
public final class Store: Sendable {
    public let dataDirectory: String
    public let log: EntityChangeLog
    public let applier: ChangeApplier
    /// The SQLite views; nil only for a read-only open of a directory that has none yet.
    public let views: ViewStore?
    /// Keeps the views up to date with the log (nil without views or when read-only).
    public let projections: ProjectionRunner?
    let logger: Logger

    /// Settings for the whole process, applied by an executable at its start (see
    /// `ViewStore.configureProcess`); false if it came too late to apply.
    @discardableResult
    public static func configureProcess() -> Bool {
        ViewStore.configureProcess()
    }

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
        logConfiguration: EntityChangeLog.Configuration = .init(), limits: ChangeLimits = .init(), logger: Logger
    ) throws {
        self.dataDirectory = dataDirectory
        self.logger = logger
        var configuration = logConfiguration
        configuration.readOnly = readOnly
        configuration.fsync = durability == .fsync
        log = try EntityChangeLog(directory: Store.logPath(dataDirectory), configuration: configuration, logger: logger)
        applier = ChangeApplier(log: log, limits: limits)
        let viewsPath = ViewStore.path(inDataDirectory: dataDirectory)
        do {
            if readOnly {
                views =
                    FileManager.default.fileExists(atPath: viewsPath)
                    ? try ViewStore(path: viewsPath, readOnly: true) : nil
                projections = nil
            } else {
                let views = try ViewStore(path: viewsPath)
                self.views = views
                projections = ProjectionRunner(log: log, views: views, logger: logger)
            }
        } catch {
            log.close()
            throw error
        }
    }

    /// A runner over this store's views with its own batch size (the shared one uses 10 000).
    public func makeProjections(batchSize: Int) -> ProjectionRunner {
        ProjectionRunner(log: log, views: views!, batchSize: batchSize, logger: logger)
    }

    public static func logPath(_ dataDirectory: String) -> String { dataDirectory + "/log" }

    /// Whether opening failed because another process has the data directory open for writing.
    public static func isInUseByAnotherProcess(_ error: any Error) -> Bool {
        (error as? EventLogError)?.code == .directoryInUse
    }

    /// Empties the log's indexes (`current`, `changeIds`) and builds them again from its records:
    /// the remedy when `verify` reports a damaged index. Records and views are not touched.
    /// Returns how many changes were indexed.
    ///
    /// - Parameter progress: changes read so far, and the head.
    public static func reindex(
        dataDirectory: String, logger: Logger, progress: (@Sendable (UInt64, UInt64) -> Void)? = nil
    ) async throws -> UInt64 {
        var configuration = EntityChangeLog.Configuration()
        configuration.rebuildIndexes = true
        if let progress { configuration.openProgress = { progress($0.rawValue, $1.rawValue) } }
        let log = try EntityChangeLog(directory: logPath(dataDirectory), configuration: configuration, logger: logger)
        defer { log.close() }
        try await log.flushIndex()
        return log.head.rawValue
    }

    public func close() {
        try? views?.close()
        log.close()
    }
}
