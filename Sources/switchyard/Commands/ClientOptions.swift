import ArgumentParser
import Foundation
import SwitchyardConfiguration

/// Where the admin API is and how to authenticate: explicit flags, else the config file.
struct ClientOptions: ParsableArguments {
    @Option(help: "Config file to take the admin address and token from (default: $SWITCHYARD_CONFIG).")
    var config: String?

    @Option(help: "Admin API URL, e.g. http://127.0.0.1:6080 (default: from the config, else that).")
    var admin: String?

    @Option(help: "Admin API bearer token (default: $SWITCHYARD_ADMIN_TOKEN, else from the config).")
    var token: String?

    func client() throws -> AdminClient {
        let environment = ProcessInfo.processInfo.environment
        var url = admin
        var token = self.token ?? environment["SWITCHYARD_ADMIN_TOKEN"]
        if let path = config ?? environment["SWITCHYARD_CONFIG"] {
            let loaded: Config
            do { loaded = try Config.load(path: path) } catch { throw CLIError(description: error.description) }
            if url == nil {
                let host = loaded.admin.host == "0.0.0.0" ? "127.0.0.1" : loaded.admin.host
                url = "http://\(host.contains(":") ? "[\(host)]" : host):\(loaded.admin.port)"
            }
            if token == nil, let secret = loaded.admin.token {
                do { token = try SecretResolver().resolve(secret) } catch {
                    throw CLIError(description: error.description)
                }
            }
        }
        return try AdminClient(url: url ?? "http://127.0.0.1:6080", token: token)
    }
}

enum JSONOutput {
    static func print(_ value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        Swift.print(String(decoding: try encoder.encode(value), as: UTF8.self))
    }
}
