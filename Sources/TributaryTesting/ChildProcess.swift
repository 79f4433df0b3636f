import Foundation
public import Subprocess
import SystemPackage

/// The `tributary` executable built beside the test bundle (tests list the CLI target as a
/// dependency so `swift test` builds it). `TRIBUTARY_BINARY` overrides the location.
public enum TributaryBinary {
    public static var path: String {
        if let explicit = ProcessInfo.processInfo.environment["TRIBUTARY_BINARY"] { return explicit }
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        // Under `swift test` argv[0] is the test bundle in the products directory; under some
        // runners it is a path inside the bundle.
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("tributary").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        return "tributary"
    }
}

/// What a finished child printed.
public struct ChildResult: Sendable {
    public var status: TerminationStatus
    public var standardOutput: String
    public var standardError: String

    public var exitCode: Int32? {
        if case .exited(let code) = status { return code }
        return nil
    }
}

/// Runs `tributary ARGS` to completion and collects its output.
public func runTributary(_ arguments: [String], environment: [String: String] = [:]) async throws -> ChildResult {
    let result = try await Subprocess.run(
        .path(FilePath(TributaryBinary.path)), arguments: Arguments(arguments),
        environment: .inherit.updating(
            Dictionary(
                uniqueKeysWithValues: environment.map { (Environment.Key(stringLiteral: $0.key), Optional($0.value)) })),
        output: .string(limit: 256 << 20), error: .string(limit: 16 << 20))
    return ChildResult(
        status: result.terminationStatus, standardOutput: result.standardOutput,
        standardError: result.standardError)
}

/// Runs `tributary ARGS` on a pseudo-terminal (through util-linux's `script`, part of every
/// Debian system) and returns what it drew there, standard output and error interleaved as a
/// terminal shows them: how to see what only a terminal gets, such as progress bars.
public func runTributaryOnATerminal(_ arguments: [String]) async throws -> ChildResult {
    func quoted(_ word: String) -> String { "'" + word.replacingOccurrences(of: "'", with: #"'\''"#) + "'" }
    let command = ([TributaryBinary.path] + arguments).map(quoted).joined(separator: " ")
    // -q: no banner; -e: the command's exit status; -c: the command; /dev/null: no typescript file.
    let result = try await Subprocess.run(
        .path(FilePath("/usr/bin/script")), arguments: ["-q", "-e", "-c", command, "/dev/null"],
        output: .string(limit: 64 << 20), error: .string(limit: 16 << 20))
    return ChildResult(
        status: result.terminationStatus, standardOutput: result.standardOutput,
        standardError: result.standardError)
}

/// Runs `sh -c SCRIPT` in a private mount namespace (`unshare -m`, root only): what it mounts is
/// seen by nothing outside and goes with it. Its exit code; nil if a signal ended it.
public func runInMountNamespace(_ script: String) async throws -> Int32? {
    let result = try await Subprocess.run(
        .path(FilePath("/usr/bin/unshare")), arguments: ["-m", "sh", "-c", script], output: .discarded)
    if case .exited(let code) = result.terminationStatus { return code }
    return nil
}
