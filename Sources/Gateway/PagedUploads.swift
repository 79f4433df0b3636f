import Foundation
import Synchronization

/// Multi-page pushes (`pageCount`/`pageIndex`/`requestId`, §3.7): pages are appended in order
/// and the body is handed over with the last one. Entries expire after 20 minutes, as in Trilium.
///
/// Uploads belong to the session (or token) that started them, so one client can neither reset
/// nor finish another's. All open uploads together hold at most `maxBytes`: a client that
/// starts uploads and never finishes them cannot grow the server's memory past it. A session
/// syncs one cycle at a time (Trilium's sync mutex), so its page 0 abandons any upload of its
/// own still open. Clients using the API token instead of a session count as one owner: two of
/// them pushing paged requests at once would abandon each other's (Trilium peers log in).
final class PagedUploads: Sendable {
    struct Upload {
        var createdAt: Double
        var nextIndex: Int
        var pageCount: Int
        var bytes: [UInt8]
    }

    struct Key: Hashable {
        /// The session token, or a fixed name for bearer-token clients.
        let owner: String
        let requestId: String
    }

    static let lifetime: Double = 1200

    private let uploads = Mutex<[Key: Upload]>([:])
    let maxBytes: Int

    init(maxBytes: Int) { self.maxBytes = maxBytes }

    /// Adds a page; returns the whole body once the last page arrived.
    func add(
        owner: String, requestId: String, pageIndex: Int, pageCount: Int, page: [UInt8],
        now: Double = Date().timeIntervalSince1970
    ) throws(GatewayError) -> [UInt8]? {
        let key = Key(owner: owner, requestId: requestId)
        let result: Result<[UInt8]?, GatewayError> = uploads.withLock { u in
            u = u.filter { now - $0.value.createdAt < PagedUploads.lifetime }
            var upload: Upload
            if pageIndex == 0 {
                u = u.filter { $0.key.owner != owner }
                upload = Upload(createdAt: now, nextIndex: 0, pageCount: pageCount, bytes: [])
            } else if let existing = u.removeValue(forKey: key) {
                // Taken out while it grows, so appending does not copy what it holds already.
                upload = existing
            } else {
                return .failure(
                    .badRequest("Partial request \(requestId), page index \(pageIndex) does not have expected record"))
            }
            guard upload.pageCount == pageCount, pageIndex == upload.nextIndex else {
                return .failure(
                    .badRequest(
                        "page \(pageIndex) of request \(requestId) is out of order (expected \(upload.nextIndex) of \(upload.pageCount))"
                    ))
            }
            guard Self.bytesHeld(u) + upload.bytes.count + page.count <= maxBytes else {
                return .failure(
                    GatewayError(
                        .contentTooLarge,
                        "paged requests may hold \(maxBytes) bytes in all (--max-push-mib); this one would pass it"))
            }
            upload.bytes.append(contentsOf: page)
            upload.nextIndex += 1
            if upload.nextIndex == pageCount { return .success(upload.bytes) }
            u[key] = upload
            return .success(nil)
        }
        return try result.get()
    }

    /// Open uploads and the bytes they hold (for tests and status).
    var usage: (uploads: Int, bytes: Int) {
        uploads.withLock { u in (u.count, Self.bytesHeld(u)) }
    }

    private static func bytesHeld(_ uploads: [Key: Upload]) -> Int {
        uploads.values.reduce(0) { $0 + $1.bytes.count }
    }
}
