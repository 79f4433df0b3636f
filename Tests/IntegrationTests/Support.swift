import EventLog
import Foundation
import Logging
import Tributary
import TributaryCore
import TributaryTesting

let logger = Logger(label: "integration")

/// Writes `records` as a JSON Lines file and returns its path.
func writeJSONLines(_ records: [ChangeRecord], to path: String) throws -> String {
    var bytes: [UInt8] = []
    for record in records {
        bytes += record.wireJSON()
        bytes.append(0x0A)
    }
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    return path
}

/// Opens a data directory read-only for the duration of `body`.
func withReadOnlyStore<R>(_ data: String, _ body: (Store) throws -> R) throws -> R {
    let store = try Store(dataDirectory: data, readOnly: true, logger: logger)
    defer { store.close() }
    return try body(store)
}
