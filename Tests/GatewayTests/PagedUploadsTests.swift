import Testing

@testable import Gateway

@Suite struct PagedUploadsTests {
    func page(_ n: Int) -> [UInt8] { [UInt8](repeating: UInt8(ascii: "x"), count: n) }

    @Test func pagesJoinInOrderForTheSessionThatStartedThem() throws {
        let uploads = PagedUploads(maxBytes: 1000)
        #expect(try uploads.add(owner: "s1", requestId: "r", pageIndex: 0, pageCount: 2, page: page(3)) == nil)
        // Another session cannot finish it, nor reset it.
        #expect(throws: GatewayError.self) {
            try uploads.add(owner: "s2", requestId: "r", pageIndex: 1, pageCount: 2, page: page(3))
        }
        #expect(try uploads.add(owner: "s2", requestId: "r", pageIndex: 0, pageCount: 2, page: page(1)) == nil)
        let whole = try uploads.add(owner: "s1", requestId: "r", pageIndex: 1, pageCount: 2, page: [UInt8(ascii: "y")])
        #expect(whole == page(3) + [UInt8(ascii: "y")])
        #expect(uploads.usage == (1, 1), "s2's upload is still open")
    }

    @Test func allOpenUploadsTogetherHoldAtMostTheLimit() throws {
        let uploads = PagedUploads(maxBytes: 100)
        for session in ["s1", "s2", "s3"] {
            #expect(try uploads.add(owner: session, requestId: "r", pageIndex: 0, pageCount: 3, page: page(30)) == nil)
        }
        // A fourth would pass 100 bytes in all; it is refused and nothing else changes.
        let refused = #expect(throws: GatewayError.self) {
            try uploads.add(owner: "s4", requestId: "r", pageIndex: 0, pageCount: 3, page: page(30))
        }
        #expect(refused?.status == .contentTooLarge)
        #expect(uploads.usage == (3, 90))
        // A page that would pass it ends its upload, freeing what it held.
        #expect(throws: GatewayError.self) {
            try uploads.add(owner: "s1", requestId: "r", pageIndex: 1, pageCount: 3, page: page(11))
        }
        #expect(uploads.usage == (2, 60))
    }

    @Test func aSessionsNewUploadAbandonsItsOldOneAndOldUploadsExpire() throws {
        let uploads = PagedUploads(maxBytes: 100)
        _ = try uploads.add(owner: "s1", requestId: "old", pageIndex: 0, pageCount: 2, page: page(60), now: 0)
        // s1 restarted its push under a new requestId: the old one is gone, so this fits.
        _ = try uploads.add(owner: "s1", requestId: "new", pageIndex: 0, pageCount: 2, page: page(60), now: 10)
        #expect(uploads.usage == (1, 60))
        #expect(throws: GatewayError.self) {
            try uploads.add(owner: "s1", requestId: "old", pageIndex: 1, pageCount: 2, page: page(1), now: 11)
        }
        // 20 minutes later s1's upload has expired and s2's fits.
        _ = try uploads.add(owner: "s2", requestId: "r", pageIndex: 0, pageCount: 2, page: page(60), now: 10 + 1200)
        #expect(uploads.usage == (1, 60))
    }
}
