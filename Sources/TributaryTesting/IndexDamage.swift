import Foundation

/// A data file that does not look the way a damage helper expects.
public struct DamageError: Error, CustomStringConvertible {
    public let description: String
}

/// Damages, in a closed log's `data.mdb`, the `current` index entry whose hash is `marker`: its
/// flags byte gets bits no version writes, so the entry can no longer be decoded.
///
/// `marker` must be a 10-character hash found nowhere else in the file but in the entity's
/// record and its index entry (the log must have been indexed, e.g. with `flushIndex`).
/// - Parameter logDirectory: the directory holding `data.mdb` (a node's `<data>/log`).
public func damageIndexEntry(in logDirectory: String, hashMarker marker: String) throws {
    let file = URL(fileURLWithPath: logDirectory + "/data.mdb")
    var bytes = try Data(contentsOf: file)
    let marks = bytes.ranges(of: Data(marker.utf8)).map(\.lowerBound)
    guard marks.count == 2 else {
        throw DamageError(description: "\(marker) occurs \(marks.count) times in \(file.path), not twice")
    }
    // In the record the hash follows its length byte (10); in the index entry, the top byte of a
    // present-day timestamp (0), nine bytes after the entry's flags.
    guard let inIndex = marks.first(where: { bytes[$0 - 1] == 0 }) else {
        throw DamageError(description: "no index entry holds \(marker) in \(file.path)")
    }
    bytes[inIndex - 9] = 0xF0
    try bytes.write(to: file)
}
