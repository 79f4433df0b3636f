import Foundation

/// A fresh directory under the system temp folder, removed after `body` returns or throws.
public func withTemporaryDirectory<R>(
    _ prefix: String = "tributary-test", _ body: (String) async throws -> R
) async throws -> R {
    let path = NSTemporaryDirectory() + "\(prefix)-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try await body(path)
}
