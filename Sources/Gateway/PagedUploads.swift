import Foundation
import Synchronization

/// Multi-page pushes (`pageCount`/`pageIndex`/`requestId`, §3.7): pages are appended in order
/// and the body is handed over with the last one. Entries expire after 20 minutes, as in Trilium.
final class PagedUploads: Sendable {
    struct Upload {
        var createdAt: Double
        var nextIndex: Int
        var pageCount: Int
        var bytes: [UInt8]
    }

    private let uploads = Mutex<[String: Upload]>([:])
    let maxBytes: Int

    init(maxBytes: Int) { self.maxBytes = maxBytes }

    /// Adds a page; returns the whole body once the last page arrived.
    func add(requestId: String, pageIndex: Int, pageCount: Int, page: [UInt8]) throws(GatewayError) -> [UInt8]? {
        let now = Date().timeIntervalSince1970
        let result: Result<[UInt8]?, GatewayError> = uploads.withLock { u in
            u = u.filter { now - $0.value.createdAt < 1200 }
            var upload: Upload
            if pageIndex == 0 {
                upload = Upload(createdAt: now, nextIndex: 0, pageCount: pageCount, bytes: [])
            } else {
                guard let existing = u[requestId] else {
                    return .failure(
                        .badRequest(
                            "Partial request \(requestId), page index \(pageIndex) does not have expected record"))
                }
                upload = existing
            }
            guard upload.pageCount == pageCount, pageIndex == upload.nextIndex else {
                u[requestId] = nil
                return .failure(
                    .badRequest(
                        "page \(pageIndex) of request \(requestId) is out of order (expected \(upload.nextIndex) of \(upload.pageCount))"
                    ))
            }
            guard upload.bytes.count + page.count <= maxBytes else {
                u[requestId] = nil
                return .failure(GatewayError(.contentTooLarge, "the paged request is larger than \(maxBytes) bytes"))
            }
            upload.bytes.append(contentsOf: page)
            upload.nextIndex += 1
            if upload.nextIndex == pageCount {
                u[requestId] = nil
                return .success(upload.bytes)
            }
            u[requestId] = upload
            return .success(nil)
        }
        return try result.get()
    }
}
