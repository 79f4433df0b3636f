public import EventLog
import Foundation
public import Projections
import Sync
import TributaryCore

/// `tributary verify`'s result: the log check, in words.
public struct VerifyOutcome: Sendable {
    public let report: VerifyReport
    /// nil: the data directory has no views (or they were not checked).
    public var viewDifferences: [ViewDifference]?
    public var viewCheckpoints: [String: UInt64] = [:]
    /// Views this node keeps that were never built (an import stopped before it built them).
    public var unbuiltViews: [String] = []

    public init(
        store: Store, from: UInt64, checkViews: Bool = true, progress: (@Sendable (UInt64) -> Void)? = nil
    ) async throws {
        // Every record is read: minutes for a large log, on a thread of its own.
        let log = store.log
        report = try await offloaded { try log.verify(from: EntityChangeID(from)) { progress?($0.rawValue) } }
        if checkViews, let views = store.views {
            viewDifferences = try await ViewVerifier.verify(
                log: store.log, views: views, scratchDirectory: NSTemporaryDirectory())
            viewCheckpoints = try views.states().mapValues { $0.lastEntityChangeId.rawValue }
            unbuiltViews = StandardProjectors.all.map(\.name).filter { viewCheckpoints[$0] == nil }
        }
    }

    public var isSound: Bool { report.isSound && (viewDifferences?.isEmpty ?? true) }

    public var text: String {
        let range = report.firstId.map { "ids \($0)-\(report.lastId!)" } ?? "no records"
        var lines: [String]
        if report.isSound {
            lines = [
                "ok: \(report.checkedRecords) records checked (\(range)); checksums, id order and indexes "
                    + "agree (indexed up to \(report.indexCheckpoint))"
            ]
        } else {
            lines = ["FAILED: \(report.problemCount) problem(s) in \(report.checkedRecords) records (\(range))"]
            lines += report.problems.map { "  \($0.id.map { "id \($0): " } ?? "")\($0.message)" }
            if report.problemCount > report.problems.count {
                lines.append("  … and \(report.problemCount - report.problems.count) more")
            }
        }
        if let viewDifferences {
            let at = viewCheckpoints.keys.sorted().map { "\($0) @ \(viewCheckpoints[$0]!)" }.joined(separator: ", ")
            if viewDifferences.isEmpty {
                if !viewCheckpoints.isEmpty { lines.append("ok: views equal a rebuild from the log (\(at))") }
                if !unbuiltViews.isEmpty {
                    // Derived data that is simply not there yet: nothing is inconsistent.
                    lines.append(
                        "note: views not built yet: \(unbuiltViews.joined(separator: ", ")) "
                            + "(`tributary project` builds them, as `tributary serve` does when it starts)")
                }
            } else {
                lines.append("FAILED: \(viewDifferences.count) view(s) differ from a rebuild (\(at))")
                lines += viewDifferences.map { "  \($0)" }
            }
        }
        return lines.joined(separator: "\n")
    }
}
