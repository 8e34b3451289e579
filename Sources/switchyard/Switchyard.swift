import ArgumentParser

#if canImport(Glibc)
    import Glibc
#endif

/// Exit codes: 0 ok, 1 error, 2 usage, 3 admin API unreachable.
enum ExitStatus {
    static let failure = ExitCode(1)
    static let usage = ExitCode(2)
    static let adminUnreachable = ExitCode(3)
}

/// An error for the operator: a sentence and an exit code.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    var exitCode: ExitCode = ExitStatus.failure
}

struct Switchyard: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchyard",
        abstract: "Replication manager and write router for MariaDB/MySQL.",
        subcommands: [
            RunCommand.self, StatusCommand.self, LagCommand.self, SandboxCommand.self, ConfigCommand.self,
        ]
    )
}

@main
enum Main {
    static func main() async {
        do {
            var command = try Switchyard.parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as CLIError {
            FileHandleOutput.standardError("switchyard: \(error.description)\n")
            exit(error.exitCode.rawValue)
        } catch {
            let code = Switchyard.exitCode(for: error)
            if code == .validationFailure {
                FileHandleOutput.standardError(Switchyard.fullMessage(for: error) + "\n")
                exit(ExitStatus.usage.rawValue)
            }
            Switchyard.exit(withError: error)
        }
    }
}

enum FileHandleOutput {
    static func standardError(_ text: String) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + offset, $0.count - offset) }
            if written <= 0 { return }
            offset += written
        }
    }
}
