import EventLog
import Foundation
import Glibc
import TributaryCore

/// `<data>/credentials.json` (mode 0600): the document secret of Trilium's sync login and the
/// bearer token of Tributary's API, generated at first start and reused after.
public struct Credentials: Codable, Sendable, Equatable {
    public var documentSecret: String
    public var apiToken: String
    public var documentId: String

    public static func path(inDataDirectory dataDirectory: String) -> String { dataDirectory + "/credentials.json" }

    /// Reads existing credentials; a client must never invent a secret the node does not have.
    public static func load(dataDirectory: String) throws -> Credentials {
        let path = path(inDataDirectory: dataDirectory)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CredentialsError(message: "\(path) does not exist (start the node once, or pass the token)")
        }
        let credentials: Credentials
        do {
            credentials = try JSONDecoder().decode(Credentials.self, from: data)
        } catch {
            throw CredentialsError(message: "\(path) is not valid credentials JSON (\(error)); fix or remove it")
        }
        // An empty or short secret (a hand-edited file) would let anyone guess their way in.
        for (name, value) in [("documentSecret", credentials.documentSecret), ("apiToken", credentials.apiToken)]
        where value.count < minimumSecretLength {
            throw CredentialsError(
                message: "\(path): \(name) has \(value.count) characters; at least \(minimumSecretLength) are needed")
        }
        return credentials
    }

    /// Shortest documentSecret or apiToken accepted (Trilium's secrets are 24 characters).
    public static let minimumSecretLength = 16

    /// Reads the credentials, creating them (0600, never overwritten) if absent.
    ///
    /// - Throws: when the file exists but is unreadable or not valid JSON — a clear error, not a
    ///   silent new secret that would break every peer's login.
    public static func loadOrCreate(dataDirectory: String) throws -> Credentials {
        let path = path(inDataDirectory: dataDirectory)
        try makeDirectories(dataDirectory)
        if FileManager.default.fileExists(atPath: path) { return try load(dataDirectory: dataDirectory) }
        // Trilium's documentSecret and documentId are base64 of 16 random bytes.
        func secret(_ bytes: Int) -> String {
            var generator = SystemRandomNumberGenerator()
            return Data((0..<bytes).map { _ in UInt8.random(in: 0...255, using: &generator) }).base64EncodedString()
        }
        let credentials = Credentials(
            documentSecret: secret(16), apiToken: RandomID.make(length: 40), documentId: secret(16))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let bytes = Array(try encoder.encode(credentials)) + [0x0A]
        // Another process may have created it meanwhile: then its secrets are the ones.
        guard try createDurably(path, bytes, mode: 0o600, failure: { CredentialsError(message: $0) }) else {
            return try loadOrCreate(dataDirectory: dataDirectory)
        }
        return credentials
    }
}

public struct CredentialsError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
