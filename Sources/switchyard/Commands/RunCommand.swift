import ArgumentParser
import Foundation
import Logging
import SwitchyardConfiguration
import SwitchyardServer

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run the controller and the admin API until SIGINT or SIGTERM.")

    @Option(help: "The config file (default: $SWITCHYARD_CONFIG).") var config: String?
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.") var logLevel: String = "info"

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
    }

    func run() async throws {
        guard let config = config ?? ProcessInfo.processInfo.environment["SWITCHYARD_CONFIG"] else {
            throw CLIError(description: "give --config FILE (or set SWITCHYARD_CONFIG)", exitCode: ExitStatus.usage)
        }
        let loaded: Config
        do { loaded = try Config.load(path: config) } catch { throw CLIError(description: error.description) }
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "switchyard")
        let controller: Controller
        do { controller = try Controller(config: loaded, logger: logger) } catch {
            throw CLIError(description: error.description)
        }
        logger.info(
            "monitoring \(loaded.servers.count) servers of cluster \(loaded.cluster.name); admin API on http://\(loaded.admin.host):\(loaded.admin.port)"
        )
        do {
            try await controller.run()
        } catch {
            throw CLIError(description: "\(error)")
        }
        logger.info("stopped")
    }
}
