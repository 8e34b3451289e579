public import Foundation

/// Reads secrets from the environment or from files, naming the source when it fails.
public struct SecretResolver: Sendable {
    public struct Failure: Error, Hashable, Sendable, CustomStringConvertible {
        public var secret: Secret
        public var reason: String
        public var description: String { "cannot read secret from \(secret): \(reason)" }
    }

    public let environment: [String: String]

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.environment = environment
    }

    public func resolve(_ secret: Secret) throws(Failure) -> String {
        switch secret {
        case .environment(let name):
            guard let value = environment[name] else { throw Failure(secret: secret, reason: "it is not set") }
            return value
        case .file(let path):
            do {
                var text = try String(contentsOfFile: path, encoding: .utf8)
                while text.hasSuffix("\n") || text.hasSuffix("\r") || text.hasSuffix("\r\n") { text.removeLast() }
                return text
            } catch {
                throw Failure(secret: secret, reason: error.localizedDescription)
            }
        }
    }

    /// Every secret the config names that cannot be read, as config issues.
    public func check(_ config: Config) -> [ConfigIssue] {
        var issues: [ConfigIssue] = []
        let named: [(String, Secret?)] = [
            ("credentials.monitor", config.credentials.monitor?.password),
            ("credentials.heartbeat", config.credentials.heartbeat?.password),
            ("credentials.replication", config.credentials.replication?.password),
            ("admin", config.admin.token),
        ]
        for (path, secret) in named {
            guard let secret else { continue }
            do { _ = try resolve(secret) } catch { issues.append(ConfigIssue(path: path, message: error.description)) }
        }
        for (path, file) in [
            ("tls.ca_file", config.tls.caFile), ("tls.cert_file", config.tls.certFile),
            ("tls.key_file", config.tls.keyFile), ("proxy.tls.cert_file", config.proxy?.certFile),
            ("proxy.tls.key_file", config.proxy?.keyFile), ("proxy.tls.client_ca_file", config.proxy?.clientCAFile),
        ] {
            guard let file else { continue }
            if !FileManager.default.isReadableFile(atPath: file) {
                issues.append(ConfigIssue(path: path, message: "cannot read \(file)"))
            }
        }
        return issues
    }
}
