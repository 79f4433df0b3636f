import Foundation
import Synchronization
import TributaryCore

/// Sync sessions opened by `POST /api/login/sync` (Trilium's `trilium.sid` cookie), in memory:
/// a restart only costs peers one login, which every Trilium sync cycle makes anyway.
final class Sessions: Sendable {
    static let cookieName = "trilium.sid"
    static let lifetime: Double = 21 * 86_400
    private let sessions = Mutex<[String: Double]>([:])

    /// A new session token.
    func open() -> String {
        let token = RandomID.make(length: 32)
        let now = Date().timeIntervalSince1970
        sessions.withLock { s in
            s = s.filter { $0.value > now }
            s[token] = now + Sessions.lifetime
        }
        return token
    }

    func isValid(_ token: String) -> Bool {
        let now = Date().timeIntervalSince1970
        return sessions.withLock { ($0[token] ?? 0) > now }
    }

    /// The session token in a Cookie header. Trilium clients echo the whole Set-Cookie value,
    /// attributes included, so anything after the value is ignored.
    static func token(inCookieHeader header: String) -> String? {
        for part in header.split(separator: ";") {
            let pair = part.trimmingCharacters(in: .whitespaces)
            if pair.hasPrefix(cookieName + "=") { return String(pair.dropFirst(cookieName.count + 1)) }
        }
        return nil
    }
}
