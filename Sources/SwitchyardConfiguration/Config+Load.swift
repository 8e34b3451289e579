import Foundation
import Topology
import Yams

extension Config {
    /// Reads, parses and validates a config file. Relative file paths in it are taken relative to the
    /// file's own directory.
    public static func load(path: String) throws(ConfigError) -> Config {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(
                file: path,
                issues: [ConfigIssue(path: "", message: "cannot read the file: \(error.localizedDescription)")])
        }
        let directory = (path as NSString).deletingLastPathComponent
        return try parse(yaml: text, file: path, baseDirectory: directory.isEmpty ? "." : directory)
    }

    /// Parses and validates YAML text; `file` only names the source in errors.
    public static func parse(yaml: String, file: String = "<config>", baseDirectory: String = ".")
        throws(ConfigError) -> Config
    {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch {
            throw ConfigError(file: file, issues: [ConfigIssue(path: "", message: "not valid YAML: \(error)")])
        }
        guard let root else {
            throw ConfigError(file: file, issues: [ConfigIssue(path: "", message: "the file is empty")])
        }
        var reader = ConfigReader()
        var config = Config()
        config.read(root, reader: &reader, baseDirectory: baseDirectory)
        if reader.issues.isEmpty { config.validate(reader: &reader) }
        if !reader.issues.isEmpty { throw ConfigError(file: file, issues: reader.issues) }
        return config
    }

    private mutating func read(_ root: Node, reader: inout ConfigReader, baseDirectory: String) {
        func absolute(_ path: String?) -> String? {
            guard let path else { return nil }
            return path.hasPrefix("/") ? path : baseDirectory + "/" + path
        }
        func absolute(_ secret: Secret?) -> Secret? {
            if case .file(let path)? = secret { return .file(absolute(path) ?? path) }
            return secret
        }
        let top = reader.mapping(
            root, "",
            allowed: [
                "version", "cluster", "servers", "credentials", "tls", "monitor", "heartbeat", "lag", "admin", "proxy",
            ])
        if let node = top["version"] {
            if let version = reader.int(node, "version", in: 1...Int.max) {
                if version != Config.currentVersion {
                    reader.fail(
                        "version", "this Switchyard reads config version \(Config.currentVersion), got \(version)")
                }
                self.version = version
            }
        } else {
            reader.fail("version", "missing (write `version: \(Config.currentVersion)`)")
        }

        let clusterFields = reader.mapping(top["cluster"], "cluster", allowed: ["name"])
        if let name = reader.string(clusterFields["name"], "cluster.name") { cluster.name = name }

        if let list = reader.sequence(top["servers"], "servers") {
            for (index, node) in list.enumerated() {
                let path = "servers[\(index)]"
                let fields = reader.mapping(node, path, allowed: ["name", "host", "port"])
                let name = reader.string(fields["name"], "\(path).name")
                let host = reader.string(fields["host"], "\(path).host")
                let port = reader.int(fields["port"], "\(path).port", in: 1...65535) ?? 3306
                if fields["name"] == nil { reader.fail("\(path).name", "missing") }
                if fields["host"] == nil { reader.fail("\(path).host", "missing") }
                if let name, let host { servers.append(Server(name: name, host: host, port: port)) }
            }
        } else if top["servers"] == nil {
            reader.fail("servers", "missing: list the cluster's servers")
        }

        let credentialFields = reader.mapping(
            top["credentials"], "credentials", allowed: ["monitor", "heartbeat", "replication"])
        func credential(_ key: String) -> Credential? {
            guard let node = credentialFields[key] else { return nil }
            let path = "credentials.\(key)"
            let fields = reader.mapping(node, path, allowed: ["user", "password_env", "password_file"])
            let user = reader.string(fields["user"], "\(path).user")
            if fields["user"] == nil { reader.fail("\(path).user", "missing") }
            let secret = absolute(reader.secret(fields, path, prefix: "password", required: true))
            guard let user, let secret else { return nil }
            return Credential(user: user, password: secret)
        }
        credentials.monitor = credential("monitor")
        credentials.heartbeat = credential("heartbeat")
        credentials.replication = credential("replication")

        let tlsFields = reader.mapping(top["tls"], "tls", allowed: ["mode", "ca_file", "cert_file", "key_file"])
        if let mode = reader.enumeration(tlsFields["mode"], "tls.mode", as: TLSMode.self) { tls.mode = mode }
        tls.caFile = absolute(reader.string(tlsFields["ca_file"], "tls.ca_file"))
        tls.certFile = absolute(reader.string(tlsFields["cert_file"], "tls.cert_file"))
        tls.keyFile = absolute(reader.string(tlsFields["key_file"], "tls.key_file"))

        let monitorFields = reader.mapping(
            top["monitor"], "monitor", allowed: ["probe_interval", "probe_timeout", "connect_timeout", "read_timeout"])
        let short = Duration.milliseconds(10)
        if let value = reader.duration(
            monitorFields["probe_interval"], "monitor.probe_interval", min: short, max: .seconds(60))
        {
            monitor.probeInterval = value
        }
        if let value = reader.duration(
            monitorFields["probe_timeout"], "monitor.probe_timeout", min: short, max: .seconds(60))
        {
            monitor.probeTimeout = value
        }
        if let value = reader.duration(
            monitorFields["connect_timeout"], "monitor.connect_timeout", min: .seconds(1), max: .seconds(300))
        {
            monitor.connectTimeout = value
        }
        if let value = reader.duration(
            monitorFields["read_timeout"], "monitor.read_timeout", min: .seconds(1), max: .seconds(300))
        {
            monitor.readTimeout = value
        }

        let heartbeatFields = reader.mapping(
            top["heartbeat"], "heartbeat", allowed: ["enabled", "interval", "schema", "table"])
        if let enabled = reader.bool(heartbeatFields["enabled"], "heartbeat.enabled") { heartbeat.enabled = enabled }
        if let value = reader.duration(heartbeatFields["interval"], "heartbeat.interval", min: short, max: .seconds(60))
        {
            heartbeat.interval = value
        }
        for key in ["schema", "table"] {
            guard let name = reader.string(heartbeatFields[key], "heartbeat.\(key)") else { continue }
            if name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) && name.count <= 64 {
                if key == "schema" { heartbeat.schema = name } else { heartbeat.table = name }
            } else {
                reader.fail("heartbeat.\(key)", "must be an identifier of letters, digits and _, got '\(name)'")
            }
        }

        let lagFields = reader.mapping(top["lag"], "lag", allowed: ["history_window"])
        if let value = reader.duration(
            lagFields["history_window"], "lag.history_window", min: .seconds(10), max: .seconds(86_400))
        {
            lag.historyWindow = value
        }

        let adminFields = reader.mapping(top["admin"], "admin", allowed: ["listen", "token_env", "token_file"])
        if let listen = reader.string(adminFields["listen"], "admin.listen") {
            if let (host, port) = Self.splitHostPort(listen) {
                admin.host = host
                admin.port = port
            } else {
                reader.fail("admin.listen", "expected host:port like 127.0.0.1:6080, got '\(listen)'")
            }
        }
        admin.token = absolute(reader.secret(adminFields, "admin", prefix: "token", required: false))

        if let node = top["proxy"] {
            proxy = Self.readProxy(node, reader: &reader, absolute: absolute)
        }
    }

    private static func readProxy(_ node: Node, reader: inout ConfigReader, absolute: (String?) -> String?) -> Proxy? {
        let fields = reader.mapping(
            node, "proxy",
            allowed: [
                "enabled", "listen", "routing", "tls", "require_tls", "backend_tls", "max_connections",
                "handshake_timeout", "max_packet_size", "allowed_networks", "users", "account_refresh_interval",
                "auth_throttle", "backend_connect_timeout", "tls_fast_path", "fast_relay", "threads", "failover_hold",
                "relay_busy_poll",
            ])
        var proxy = Proxy()
        let enabled = reader.bool(fields["enabled"], "proxy.enabled") ?? true
        if let listen = reader.string(fields["listen"], "proxy.listen") {
            if let (host, port) = splitHostPort(listen) {
                proxy.host = host
                proxy.port = port
            } else {
                reader.fail("proxy.listen", "expected host:port like 127.0.0.1:6033, got '\(listen)'")
            }
        }
        if let routing = reader.enumeration(fields["routing"], "proxy.routing", as: Proxy.Routing.self) {
            proxy.routing = routing
        }
        let tlsFields = reader.mapping(
            fields["tls"], "proxy.tls", allowed: ["cert_file", "key_file", "client_ca_file"])
        proxy.certFile = absolute(reader.string(tlsFields["cert_file"], "proxy.tls.cert_file"))
        proxy.keyFile = absolute(reader.string(tlsFields["key_file"], "proxy.tls.key_file"))
        proxy.clientCAFile = absolute(reader.string(tlsFields["client_ca_file"], "proxy.tls.client_ca_file"))
        if let value = reader.bool(fields["require_tls"], "proxy.require_tls") { proxy.requireTLS = value }
        if let value = reader.bool(fields["tls_fast_path"], "proxy.tls_fast_path") { proxy.tlsFastPath = value }
        if let value = reader.bool(fields["fast_relay"], "proxy.fast_relay") { proxy.fastRelay = value }
        if let value = reader.int(fields["threads"], "proxy.threads", in: 1...256) { proxy.threads = value }
        if let value = reader.duration(
            fields["relay_busy_poll"], "proxy.relay_busy_poll", min: .zero, max: .milliseconds(10))
        {
            proxy.relayBusyPoll = value
        }
        if let mode = reader.enumeration(fields["backend_tls"], "proxy.backend_tls", as: Proxy.BackendTLSMode.self) {
            proxy.backendTLS = mode
        }
        if let value = reader.int(fields["max_connections"], "proxy.max_connections", in: 1...1_000_000) {
            proxy.maxConnections = value
        }
        if let value = reader.duration(
            fields["handshake_timeout"], "proxy.handshake_timeout", min: .milliseconds(100), max: .seconds(3600))
        {
            proxy.handshakeTimeout = value
        }
        if let value = reader.duration(
            fields["backend_connect_timeout"], "proxy.backend_connect_timeout", min: .milliseconds(100),
            max: .seconds(300))
        {
            proxy.backendConnectTimeout = value
        }
        if let value = reader.duration(fields["failover_hold"], "proxy.failover_hold", min: .zero, max: .seconds(3600))
        {
            proxy.failoverHold = value
        }
        if let value = reader.int(fields["max_packet_size"], "proxy.max_packet_size", in: 1024...(1 << 30)) {
            proxy.maxPacketSize = value
        }
        proxy.allowedNetworks = readNetworks(fields["allowed_networks"], "proxy.allowed_networks", reader: &reader)
        if let users = fields["users"] {
            let names = reader.mappingKeys(users, "proxy.users")
            for (name, value) in names {
                let path = "proxy.users.\(name)"
                let userFields = reader.mapping(
                    value, path, allowed: ["allowed_networks", "password_hash", "host", "require_tls"])
                if let networks = userFields["allowed_networks"] {
                    proxy.userNetworks[name] = readNetworks(networks, "\(path).allowed_networks", reader: &reader)
                }
                if let account = readAccount(name, userFields, path, reader: &reader) { proxy.accounts.append(account) }
            }
        }
        if let value = reader.duration(
            fields["account_refresh_interval"], "proxy.account_refresh_interval", min: .seconds(1),
            max: .seconds(86_400))
        {
            proxy.accountRefreshInterval = value
        }
        let throttle = reader.mapping(
            fields["auth_throttle"], "proxy.auth_throttle", allowed: ["max_failures", "window"])
        if let value = reader.int(throttle["max_failures"], "proxy.auth_throttle.max_failures", in: 0...1_000_000) {
            proxy.authThrottleMaxFailures = value
        }
        if let value = reader.duration(
            throttle["window"], "proxy.auth_throttle.window", min: .seconds(1), max: .seconds(86_400))
        {
            proxy.authThrottleWindow = value
        }
        return enabled ? proxy : nil
    }

    /// A user's account in the config: `password_hash` is what `mysql.user` stores for `mysql_native_password`
    /// (`*` and 40 hex digits, as `SELECT PASSWORD('…')` shows), never the password itself.
    private static func readAccount(
        _ name: String, _ fields: [String: Node], _ path: String, reader: inout ConfigReader
    ) -> Account? {
        guard let hash = reader.string(fields["password_hash"], "\(path).password_hash") else {
            for key in ["host", "require_tls"] where fields[key] != nil {
                reader.fail("\(path).\(key)", "applies to an account defined here: add password_hash")
            }
            return nil
        }
        let hexDigits = Set("0123456789abcdefABCDEF".utf8)
        guard hash.utf8.count == 41, hash.first == "*", hash.utf8.dropFirst().allSatisfy(hexDigits.contains) else {
            reader.fail(
                "\(path).password_hash",
                "expected '*' and 40 hex digits (mysql_native_password's stored hash, SELECT PASSWORD('…')), "
                    + "not the password")
            return nil
        }
        if name.isEmpty { reader.fail(path, "an account needs a user name") }
        return Account(
            user: name, host: reader.string(fields["host"], "\(path).host") ?? "%", plugin: "mysql_native_password",
            authenticationString: hash.uppercased(),
            requiresTLS: reader.bool(fields["require_tls"], "\(path).require_tls") ?? false)
    }

    private static func readNetworks(_ node: Node?, _ path: String, reader: inout ConfigReader) -> [CIDR] {
        guard let list = reader.sequence(node, path) else { return [] }
        var networks: [CIDR] = []
        for (index, item) in list.enumerated() {
            guard let text = reader.string(item, "\(path)[\(index)]") else { continue }
            if let network = CIDR(text) {
                networks.append(network)
            } else {
                reader.fail("\(path)[\(index)]", "expected a network like 10.0.0.0/8 or an address, got '\(text)'")
            }
        }
        return networks
    }

    static func splitHostPort(_ text: String) -> (String, Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : (host, port)
    }

    /// Cross-field checks.
    private func validate(reader: inout ConfigReader) {
        if servers.isEmpty { reader.fail("servers", "list at least one server") }
        var names: Set<String> = []
        var addresses: Set<String> = []
        for (index, server) in servers.enumerated() {
            if !names.insert(server.name).inserted {
                reader.fail("servers[\(index)].name", "'\(server.name)' is used by another server")
            }
            if !addresses.insert("\(server.host):\(server.port)").inserted {
                reader.fail("servers[\(index)]", "\(server.host):\(server.port) is listed twice")
            }
            if server.host == "localhost" {
                reader.fail(
                    "servers[\(index)].host",
                    "use 127.0.0.1, not localhost (libmariadb would ignore the port and use the default unix socket)")
            }
        }
        if credentials.monitor == nil { reader.fail("credentials.monitor", "missing: the controller's account") }
        if heartbeat.enabled && credentials.heartbeat == nil {
            reader.fail("credentials.heartbeat", "missing: the heartbeat account (or set heartbeat.enabled: false)")
        }
        if monitor.probeTimeout >= monitor.probeInterval {
            reader.fail(
                "monitor.probe_timeout",
                "must be shorter than monitor.probe_interval (\(ConfigReader.format(monitor.probeInterval)))")
        }
        if tls.mode == .verifyCA || tls.mode == .verifyIdentity, tls.caFile == nil {
            reader.fail("tls.ca_file", "missing: tls.mode \(tls.mode.rawValue) verifies against this CA")
        }
        if (tls.certFile == nil) != (tls.keyFile == nil) {
            reader.fail("tls", "cert_file and key_file go together")
        }
        if let proxy {
            if (proxy.certFile == nil) != (proxy.keyFile == nil) {
                reader.fail("proxy.tls", "cert_file and key_file go together")
            }
            if proxy.requireTLS && proxy.certFile == nil {
                reader.fail("proxy.require_tls", "needs proxy.tls.cert_file and proxy.tls.key_file")
            }
            if proxy.clientCAFile != nil && proxy.certFile == nil {
                reader.fail("proxy.tls.client_ca_file", "needs proxy.tls.cert_file and proxy.tls.key_file")
            }
            if proxy.backendTLS == .verifyCA || proxy.backendTLS == .verifyIdentity, tls.caFile == nil {
                reader.fail(
                    "proxy.backend_tls",
                    "\(proxy.backendTLS.rawValue) verifies against tls.ca_file, which is missing "
                        + "(or set proxy.backend_tls: disabled explicitly)")
            }
            if proxy.host == admin.host && proxy.port == admin.port {
                reader.fail("proxy.listen", "is the same address as admin.listen")
            }
        }
        if !Self.isLoopback(admin.host) && admin.token == nil {
            reader.fail(
                "admin.listen",
                "\(admin.host) is not a loopback address: set admin.token_env or admin.token_file to protect the API")
        }
    }

    public static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }
}
