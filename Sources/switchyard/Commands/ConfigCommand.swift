import ArgumentParser
import SwitchyardConfiguration

struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Work with Switchyard config files.",
        subcommands: [Check.self]
    )

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a config file and print every problem, naming its key.")

        @Argument(help: "The config file.") var file: String

        func run() async throws {
            let config: Config
            do {
                config = try Config.load(path: file)
            } catch {
                throw CLIError(description: error.description)
            }
            let issues = SecretResolver().check(config)
            if !issues.isEmpty {
                throw CLIError(description: ConfigError(file: file, issues: issues).description)
            }
            let servers = config.servers.map { "\($0.name) \($0.host):\($0.port)" }.joined(separator: ", ")
            print("\(file): OK (config version \(config.version), cluster \(config.cluster.name), servers: \(servers))")
        }
    }
}
