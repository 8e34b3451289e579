import ArgumentParser
import Foundation
import Sandbox

struct SandboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sandbox",
        abstract: "Run a local MariaDB replication cluster for demos and tests.",
        subcommands: [Up.self, Down.self, Status.self]
    )

    struct Location: ParsableArguments {
        @Option(help: "Directory holding the sandbox's servers, certificates, secrets and config.")
        var dir: String = "sandbox"
    }

    struct Up: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start a fresh cluster (stopping and wiping a previous one in the same directory).")

        @OptionGroup var location: Location
        @Option(help: "Number of MariaDB servers (the first is the primary).") var servers: Int = 3
        @Option(help: "Port of the first server; the others follow.") var basePort: Int = 3311
        @Option(help: "Admin API port written into the generated config.") var adminPort: Int = 6080
        @Option(help: "SQL proxy port written into the generated config.") var proxyPort: Int = 6033

        func validate() throws {
            guard (1...9).contains(servers) else { throw ValidationError("--servers must be between 1 and 9") }
            guard (1...65000).contains(basePort) else { throw ValidationError("--base-port must be a TCP port") }
        }

        func run() async throws {
            let start = ContinuousClock.now
            let sandbox = Sandbox(log: { FileHandleOutput.standardError("sandbox: \($0)\n") })
            let manifest: SandboxManifest
            do {
                manifest = try sandbox.up(
                    Sandbox.Options(
                        servers: servers, basePort: basePort, directory: location.dir, adminPort: adminPort,
                        proxyPort: proxyPort)
                )
            } catch {
                throw CLIError(description: "sandbox up failed: \(error)")
            }
            let elapsed = ContinuousClock.now - start
            print("Sandbox up in \(elapsed.formatted(.units(allowed: [.seconds], fractionalPart: .show(length: 1)))):")
            for instance in manifest.instances {
                print("  \(instance.name)  127.0.0.1:\(instance.port)  pid \(instance.pid)  \(instance.role)")
            }
            print("Config: \(manifest.config)")
            print("Root shell on s1: mariadb --no-defaults -S \(manifest.instances[0].socket) -u root")
        }
    }

    struct Down: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop the sandbox's servers.")
        @OptionGroup var location: Location

        func run() async throws {
            do {
                try Sandbox(log: { FileHandleOutput.standardError("sandbox: \($0)\n") }).down(directory: location.dir)
            } catch {
                throw CLIError(description: "sandbox down failed: \(error)")
            }
            print("Sandbox in \(location.dir) stopped.")
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the sandbox's servers.")
        @OptionGroup var location: Location
        @Flag(help: "Print JSON.") var json = false

        struct Document: Encodable {
            struct Instance: Encodable {
                var name: String
                var port: Int
                @ExplicitNull var pid: Int32?
                var socket: String
                var datadir: String
                var role: String

                enum CodingKeys: String, CodingKey { case name, port, pid, socket, datadir, role }
            }
            var config: String
            var instances: [Instance]
        }

        func run() async throws {
            let manifest: SandboxManifest
            do { manifest = try Sandbox().status(directory: location.dir) } catch {
                throw CLIError(description: "\(error)")
            }
            if json {
                let document = Document(
                    config: manifest.config,
                    instances: manifest.instances.map {
                        Document.Instance(
                            name: $0.name, port: $0.port, pid: $0.pid > 0 ? $0.pid : nil, socket: $0.socket,
                            datadir: $0.datadir, role: $0.role)
                    })
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                print(String(decoding: try encoder.encode(document), as: UTF8.self))
                return
            }
            print("Config: \(manifest.config)")
            let rows = manifest.instances.map {
                [$0.name, "127.0.0.1:\($0.port)", $0.pid > 0 ? "\($0.pid)" : "-", $0.role, $0.socket]
            }
            print(Table.render(header: ["NAME", "ADDRESS", "PID", "ROLE", "SOCKET"], rows: rows))
        }
    }
}
