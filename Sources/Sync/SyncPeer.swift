/// The node this one syncs to (its Trilium "sync server").
public struct SyncPeer: Sendable, Hashable {
    /// Base URL without a trailing slash, e.g. `http://hub:8080`.
    public var url: String
    public var documentSecret: String
    public var syncVersion: Int
    /// Ask for every change of a range instead of each entity's latest (Tributary peers only;
    /// a plain Trilium server ignores the request and serves compacted pages).
    public var fullHistory: Bool

    public init(url: String, documentSecret: String, syncVersion: Int = 36, fullHistory: Bool = false) {
        var url = url
        while url.hasSuffix("/") { url.removeLast() }
        self.url = url
        self.documentSecret = documentSecret
        self.syncVersion = syncVersion
        self.fullHistory = fullHistory
    }

    /// Names of this peer's cursors in the log's meta.
    var pushCheckpoint: String { "sync.\(url).lastSyncedPush" }
    var pullCheckpoint: String { "sync.\(url).lastSyncedPull" }

    /// The request header of the full-history extension, beside Trilium's exact syncVersion.
    public static let historyHeader = "x-tributary-history"
}
