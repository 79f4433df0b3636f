import Foundation
import Testing
import Tributary
import TributaryTesting

@Suite struct CredentialsTests {
    @Test func createdOnceThenReused() async throws {
        try await withTemporaryDirectory { dir in
            let first = try Credentials.loadOrCreate(dataDirectory: dir)
            #expect(try Credentials.loadOrCreate(dataDirectory: dir) == first)
            #expect(first.documentSecret.count >= Credentials.minimumSecretLength)
            #expect(first.apiToken.count >= Credentials.minimumSecretLength)
            let mode =
                try FileManager.default.attributesOfItem(atPath: Credentials.path(inDataDirectory: dir))[
                    .posixPermissions] as? Int
            #expect(mode == 0o600)
        }
    }

    @Test(arguments: [("documentSecret", ""), ("apiToken", ""), ("apiToken", "short")])
    func anEmptyOrShortSecretIsRefused(_ field: String, _ value: String) async throws {
        try await withTemporaryDirectory { dir in
            var fields = [
                "documentSecret": "aaaaaaaaaaaaaaaaaaaaaaaa", "apiToken": "bbbbbbbbbbbbbbbbbbbbbbbb", "documentId": "d",
            ]
            fields[field] = value
            let json = try JSONSerialization.data(withJSONObject: fields)
            #expect(FileManager.default.createFile(atPath: Credentials.path(inDataDirectory: dir), contents: json))
            let error = #expect(throws: CredentialsError.self) { try Credentials.load(dataDirectory: dir) }
            #expect(error?.message.contains(field) == true)
        }
    }
}
