import Foundation

/// What `sandbox up` started, saved as `<dir>/sandbox.json`; `down` and `status` read it.
public struct SandboxManifest: Codable, Hashable, Sendable {
    public struct Instance: Codable, Hashable, Sendable {
        public var name: String
        public var port: Int
        public var pid: Int32
        public var socket: String
        public var datadir: String
        /// `primary`, `replica`, `standalone` or `stopped` (live in `status`; as set up in the file).
        public var role: String
        /// Path of the instance's my.cnf: its server process's command line names it.
        public var defaultsFile: String

        enum CodingKeys: String, CodingKey {
            case name, port, pid, socket, datadir, role
            case defaultsFile = "defaults_file"
        }
    }

    /// The generated Switchyard config file.
    public var config: String
    public var directory: String
    public var instances: [Instance]
    /// Files holding the generated passwords, by account (`monitor`, `heartbeat`, `replication`, `app`).
    public var secrets: [String: String]
    public var caFile: String
    public var adminPort: Int
    /// The SQL proxy's port and certificate in the generated config (absent in older manifests).
    public var proxyPort: Int?
    public var certificateFile: String?
    public var keyFile: String?

    enum CodingKeys: String, CodingKey {
        case config, directory, instances, secrets
        case caFile = "ca_file"
        case adminPort = "admin_port"
        case proxyPort = "proxy_port"
        case certificateFile = "cert_file"
        case keyFile = "key_file"
    }

    static func path(in directory: String) -> String { directory + "/sandbox.json" }

    public static func load(directory: String) throws -> SandboxManifest {
        let path = path(in: directory)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SandboxError("no sandbox in \(directory) (\(path) not found); start one with `switchyard sandbox up`")
        }
        return try JSONDecoder().decode(SandboxManifest.self, from: data)
    }

    func save() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try encoder.encode(self).write(to: URL(fileURLWithPath: Self.path(in: directory)))
    }

    /// The password of a sandbox account (`monitor`, `heartbeat`, `replication`, `app`).
    public func password(_ account: String) throws -> String {
        guard let file = secrets[account] else { throw SandboxError("the sandbox has no \(account) account") }
        return try String(contentsOfFile: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

public struct SandboxError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
