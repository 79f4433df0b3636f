import EventLog
public import TributaryCore

/// `tributary replay`: the log as JSON Lines, one change per line in id order,
/// `{"id":N,"entityChange":{…,"originInstanceId":…},"entity":{…}}` — the audit trail.
public struct Replayer: Sendable {
    public var from: UInt64?
    public var to: UInt64?
    public var entity: String?
    public var limit: Int?

    public init(from: UInt64? = nil, to: UInt64? = nil, entity: String? = nil, limit: Int? = nil) {
        self.from = from
        self.to = to
        self.entity = entity
        self.limit = limit
    }

    /// Writes the selected changes; returns how many were written. Changes before a damaged
    /// record are written, then its error is thrown.
    ///
    /// - Throws: `CoreError` for an unknown entity name; `EventLogError.corruptRecord` naming
    ///   the damaged record.
    public func run(store: Store, to output: Output) throws -> Int {
        let name = try entity.map { name throws(CoreError) in try EntityName(validating: name) }
        var cursor = EntityChangeID((from ?? 1) > 0 ? (from ?? 1) - 1 : 0)
        let last = EntityChangeID(to ?? UInt64.max)
        var written = 0
        var writer = JSONWriter(capacity: 1 << 16)
        var done = false
        defer { output.flush() }
        while !done, cursor < last, !output.closed {
            // A page is copied out and its transaction closed before anything is written: output
            // that blocks (`replay | less`) must not hold a snapshot that keeps the writer from
            // reusing the log's free pages.
            var page: [LoggedChange] = []
            var damaged: (any Error)?
            do {
                try store.log.forEachChange(after: cursor, limit: 1000) { page.append($0) }
            } catch {
                damaged = error
            }
            if page.isEmpty, damaged == nil { break }
            for change in page {
                cursor = change.id
                guard change.id <= last, limit.map({ written < $0 }) ?? true else {
                    done = true
                    break
                }
                if let name, change.change.entityName != name { continue }
                writer.bytes.removeAll(keepingCapacity: true)
                Replayer.writeLine(change, to: &writer)
                output.write(writer.bytes)
                written += 1
            }
            if let damaged, !done { throw damaged }
        }
        return written
    }

    /// One audit line, newline included.
    public static func writeLine(_ change: LoggedChange, to writer: inout JSONWriter) {
        change.writeAudit(to: &writer)
        writer.raw("\n")
    }
}
