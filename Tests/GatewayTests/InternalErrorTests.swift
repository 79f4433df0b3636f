import EventLog
import Testing
import Tributary
import TributaryCore
import TributaryTesting

/// An unexpected failure inside a request: the client gets a plain 500 that describes nothing
/// internal, nothing is written, the node goes on serving, and the operator's log says what broke.
@Suite(.timeLimit(.minutes(2))) struct InternalErrorTests {
    @Test func aDamagedIndexEntryIsAPlain500ForTheClientAndNamedInTheLog() async throws {
        try await withTemporaryDirectory { dir in
            let marker = "IDXMARK8k2"
            var records = SampleEvents(seed: 71).records(20).filter { !$0.change.isErased }
            records[0].change.hash = marker
            let damaged = records[0].change
            try await withNode(dataDirectory: dir) { node in
                _ = try await node.node.store.applier.applyRemote(records, from: .recordInstance)
                try await node.node.store.log.flushIndex()
            }
            try damageIndexEntry(in: dir + "/log", hashMarker: marker)

            let capture = LogCapture()
            try await withNode(dataDirectory: dir, logger: capture.logger()) { node in
                // Erasing the entity reads its `current` entry, which cannot be decoded.
                let erase =
                    #"[{"entityName":"\#(damaged.entityName.rawValue)","entityId":"\#(damaged.entityId)","isErased":1}]"#
                let answer = try await node.request(
                    .POST, "/api/changes", headers: [node.bearer, ("Content-Type", "application/json")],
                    body: Array(erase.utf8))
                #expect(answer.status == 500)
                #expect(answer.text == #"{"message":"internal error"}"#)
                #expect(answer.header("trilium-max-entity-change-id") == "\(records.count)")
                #expect(node.node.store.log.head == EntityChangeID(UInt64(records.count)))

                // The operator reads which entry is damaged; the client read none of it.
                let failures = capture.lines.filter { $0.message == "request failed" }
                #expect(failures.count == 1)
                let logged = failures.first?.metadata["error"] ?? ""
                #expect(logged.contains("\(damaged.key)"), "\(logged)")
                #expect(!answer.text.contains(damaged.entityId))

                // The node goes on: a write of another entity is taken.
                let other = records[1].change
                let fine =
                    #"[{"entityName":"\#(other.entityName.rawValue)","entityId":"\#(other.entityId)","isErased":1}]"#
                let taken = try await node.request(
                    .POST, "/api/changes", headers: [node.bearer, ("Content-Type", "application/json")],
                    body: Array(fine.utf8))
                #expect(taken.status == 200, "\(taken.text)")
                #expect(node.node.store.log.head == EntityChangeID(UInt64(records.count + 1)))
            }
        }
    }
}
