import ArgumentParser
import Glibc
import Logging
import Tributary
import TributaryCore

@main
struct TributaryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tributary",
        abstract: "An event-sourced replication service that speaks Trilium's sync protocol.",
        version: TributaryVersion.current,
        subcommands: [
            ImportCommand.self, ReplayCommand.self, StatusCommand.self, VerifyCommand.self, BackupCommand.self,
            RebuildCommand.self, ReindexCommand.self,
            ProjectCommand.self, ServeCommand.self, SyncCommand.self, TailCommand.self, CredentialsCommand.self,
            BenchCommand.self,
            SampleCommand.self,
        ])

    static func main() async {
        // A closed pipe (`tributary replay | head`) ends output; it must not kill the process.
        signal(SIGPIPE, SIG_IGN)
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = logLevelFromEnvironment()
            return handler
        }
        let logger = Logger(label: "tributary")
        if Store.configureProcess() {
            logger.debug("SQLite settings applied (memory statistics off)")
        } else {
            logger.warning("SQLite was in use before its settings could be applied")
        }
        do {
            var command = try parseAsRoot()
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}

/// `TRIBUTARY_LOG_LEVEL` (trace … critical); notices and worse by default, so a command says
/// when it does more than asked (a view rebuilt because its schema changed, say).
func logLevelFromEnvironment() -> Logger.Level {
    guard let value = getenv("TRIBUTARY_LOG_LEVEL") else { return .notice }
    return Logger.Level(rawValue: String(cString: value)) ?? .notice
}

/// Options shared by every command that opens a data directory.
struct DataOptions: ParsableArguments {
    @Option(name: .long, help: "The data directory.")
    var data: String = "./tributary-data"
}

/// Prints `message` to standard error and exits non-zero: the one way commands report failure.
func fail(_ message: String, code: Int32 = 1) -> ExitCode {
    FileHandleStderr.write("error: \(message)\n")
    return ExitCode(code)
}

/// Runs a command's work, reporting any error through `fail` after `cleanup` (which clears a
/// progress line).
func reporting<T>(cleanup: () -> Void = {}, _ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch {
        cleanup()
        throw reported(error)
    }
}

/// `reporting` for asynchronous work.
func reporting<T>(cleanup: () async -> Void = {}, _ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch {
        await cleanup()
        throw reported(error)
    }
}

/// An exit code passes through (already reported); anything else is reported now.
private func reported(_ error: any Error) -> any Error {
    error as? ExitCode ?? fail("\(error)")
}

enum FileHandleStderr {
    static func write(_ text: String) {
        var text = text
        text.withUTF8 { _ = Glibc.write(2, $0.baseAddress, $0.count) }
    }
}

/// `--durability`: `fsync` (every commit on disk before it is acknowledged) or `none`.
enum DurabilityOption: String, ExpressibleByArgument, CaseIterable {
    case fsync, none

    var value: Store.Durability { self == .fsync ? .fsync : .none }
}
