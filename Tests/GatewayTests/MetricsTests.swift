import Foundation
import Testing
import TributaryTesting

@Suite(.timeLimit(.minutes(3))) struct MetricsTests {
    /// `/metrics` carries what docs/api.md lists, with what happened: the log's appends and commit
    /// times, the apply path's outcomes, the views' lag and the HTTP layer's requests. (The
    /// metrics system is one per process, so counts include other tests' nodes: at least, not
    /// exactly.)
    @Test func theMetricsPageReportsTheLogTheApplyPathTheViewsAndHTTP() async throws {
        try await withTemporaryDirectory { dir in
            try await withNode(dataDirectory: dir + "/node") { node in
                let write = try await node.request(
                    .POST, "/api/changes", headers: [node.bearer, ("Content-Type", "application/json")],
                    body: Array(
                        #"[{"entityName":"notes","entityId":"metricsNote1","entity":{"title":"m","type":"text","mime":"text/html","isProtected":0}}]"#
                            .utf8))
                #expect(write.status == 200, "\(write.text)")
                try await node.node.store.projections?.waitFor(node.node.store.log.head, timeout: .seconds(10))
                let metrics = try await node.request(.GET, "/metrics", headers: [node.bearer])
                #expect(metrics.status == 200)
                let samples = Dictionary(
                    metrics.text.split(separator: "\n").filter { !$0.hasPrefix("#") }.compactMap { line in
                        line.lastIndex(of: " ").flatMap { space in
                            Double(line[line.index(after: space)...]).map { (String(line[..<space]), $0) }
                        }
                    }, uniquingKeysWith: { first, _ in first })
                #expect(samples["tributary_log_appended_changes_total"] ?? 0 >= 1)
                #expect(samples["tributary_log_commit_duration_count"] ?? 0 >= 1)
                #expect(samples[#"tributary_apply_changes_total{origin="local",outcome="applied"}"#] ?? 0 >= 1)
                #expect(samples["tributary_views_lag"] != nil)
                #expect(samples["tributary_log_unindexed_changes"] != nil)
                #expect(samples.keys.contains { $0.hasPrefix("hb_requests{") })
                #expect(samples.keys.contains { $0.hasPrefix("http_server_request_duration") })
                // Refusals are timed too, not only counted (the request without a token above
                // the scrape: this node's /api/status refused with 401).
                _ = try await node.request(.GET, "/api/status")
                let again = try await node.request(.GET, "/metrics", headers: [node.bearer]).text
                #expect(
                    again.split(separator: "\n").contains {
                        $0.hasPrefix("http_server_request_duration_count{") && $0.contains(#"http_route="/api/status""#)
                            && $0.contains(#"http_response_status_code="401""#)
                    }, "no duration recorded for a 401")
            }
        }
    }
}
