public import EventLog
import TributaryCore

/// `tributary verify`'s result: the log check, in words.
public struct VerifyOutcome: Sendable {
    public let report: VerifyReport

    public init(store: Store, from: UInt64, progress: ((UInt64) -> Void)? = nil) throws {
        report = try store.log.verify(from: EntityChangeID(from)) { progress?($0.rawValue) }
    }

    public var isSound: Bool { report.isSound }

    public var text: String {
        let range = report.firstId.map { "ids \($0)-\(report.lastId!)" } ?? "no records"
        if report.isSound {
            return "ok: \(report.checkedRecords) records checked (\(range)); checksums, id order and indexes "
                + "agree (indexed up to \(report.indexCheckpoint))"
        }
        var lines = ["FAILED: \(report.problemCount) problem(s) in \(report.checkedRecords) records (\(range))"]
        lines += report.problems.map { "  \($0.id.map { "id \($0): " } ?? "")\($0.message)" }
        if report.problemCount > report.problems.count {
            lines.append("  … and \(report.problemCount - report.problems.count) more")
        }
        return lines.joined(separator: "\n")
    }
}
