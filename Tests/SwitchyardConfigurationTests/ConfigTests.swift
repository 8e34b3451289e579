import Foundation
import SwitchyardConfiguration
import Testing

@Suite("Config parsing and secrets")
struct ConfigTests {
    /// Every section, every key.
    private static let full = """
        version: 1
        cluster:
          name: shop
        servers:
          - name: s1
            host: 127.0.0.1
            port: 3311
          - name: s2
            host: 127.0.0.1
            port: 3312
          - name: s3
            host: db3.internal
        credentials:
          monitor:
            user: switchyard
            password_file: secrets/monitor.pw
          heartbeat:
            user: switchyard_hb
            password_env: SWITCHYARD_HEARTBEAT_PASSWORD
          replication:
            user: repl
            password_file: /etc/switchyard/repl.pw
        tls:
          mode: verify_identity
          ca_file: tls/ca.pem
          cert_file: /etc/switchyard/tls/client.pem
          key_file: tls/client.key
        monitor:
          probe_interval: 500ms
          probe_timeout: 450ms
          connect_timeout: 2s
          read_timeout: 3
        heartbeat:
          enabled: true
          interval: 0.25
          schema: switchyard_meta
          table: hb
        lag:
          history_window: 10m
        admin:
          listen: 0.0.0.0:7080
          token_file: admin.token

        """

    /// The fewest keys a valid config needs.
    private static let minimal = """
        version: 1
        servers:
          - name: s1
            host: 127.0.0.1
            port: 3311
          - name: s2
            host: 127.0.0.1
            port: 3312
        credentials:
          monitor:
            user: monitor
            password_env: MONITOR_PASSWORD
          heartbeat:
            user: heartbeat
            password_env: HEARTBEAT_PASSWORD
        tls:
          mode: disabled

        """

    private static func minimal(replacing old: String, with new: String) -> String {
        precondition(minimal.contains(old), "fixture does not contain \(old)")
        return minimal.replacingOccurrences(of: old, with: new)
    }

    /// The issues of a config that must not parse.
    private static func issues(_ yaml: String) throws -> [ConfigIssue] {
        let error = try #require(throws: ConfigError.self) {
            try Config.parse(yaml: yaml, file: "switchyard.yaml", baseDirectory: "/etc/switchyard")
        }
        #expect(error.file == "switchyard.yaml")
        return error.issues
    }

    private static func issue(at path: String, in yaml: String) throws -> ConfigIssue {
        let all = try issues(yaml)
        return try #require(all.first { $0.path == path }, "no issue at \(path) in \(all)")
    }

    // MARK: Valid configs

    @Test func fullConfigParses() throws {
        let config = try Config.parse(yaml: Self.full, file: "switchyard.yaml", baseDirectory: "/etc/switchyard")
        #expect(config.version == 1)
        #expect(config.cluster.name == "shop")
        #expect(
            config.servers == [
                Config.Server(name: "s1", host: "127.0.0.1", port: 3311),
                Config.Server(name: "s2", host: "127.0.0.1", port: 3312),
                Config.Server(name: "s3", host: "db3.internal", port: 3306),
            ])
        #expect(
            config.credentials.monitor
                == Config.Credential(
                    user: "switchyard", password: .file("/etc/switchyard/secrets/monitor.pw")))
        #expect(
            config.credentials.heartbeat
                == Config.Credential(
                    user: "switchyard_hb", password: .environment("SWITCHYARD_HEARTBEAT_PASSWORD")))
        #expect(
            config.credentials.replication
                == Config.Credential(
                    user: "repl", password: .file("/etc/switchyard/repl.pw")))
        #expect(config.tls.mode == .verifyIdentity)
        #expect(config.tls.caFile == "/etc/switchyard/tls/ca.pem")
        #expect(config.tls.certFile == "/etc/switchyard/tls/client.pem")
        #expect(config.tls.keyFile == "/etc/switchyard/tls/client.key")
        #expect(config.monitor.probeInterval == .milliseconds(500))
        #expect(config.monitor.probeTimeout == .milliseconds(450))
        #expect(config.monitor.connectTimeout == .seconds(2))
        #expect(config.monitor.readTimeout == .seconds(3))
        #expect(config.heartbeat.enabled)
        #expect(config.heartbeat.interval == .milliseconds(250))
        #expect(config.heartbeat.schema == "switchyard_meta")
        #expect(config.heartbeat.table == "hb")
        #expect(config.lag.historyWindow == .seconds(600))
        #expect(config.admin.host == "0.0.0.0")
        #expect(config.admin.port == 7080)
        #expect(config.admin.token == .file("/etc/switchyard/admin.token"))
    }

    @Test func relativePathsFollowTheBaseDirectory() throws {
        let config = try Config.parse(yaml: Self.full, baseDirectory: "config")
        #expect(config.credentials.monitor?.password == .file("config/secrets/monitor.pw"))
        #expect(config.credentials.replication?.password == .file("/etc/switchyard/repl.pw"))
        #expect(config.tls.caFile == "config/tls/ca.pem")
    }

    @Test func omittedSectionsTakeDefaults() throws {
        let config = try Config.parse(yaml: Self.minimal)
        let defaults = Config()
        #expect(config.servers.map(\.name) == ["s1", "s2"])
        #expect(config.credentials.monitor?.user == "monitor")
        #expect(config.credentials.monitor?.password == .environment("MONITOR_PASSWORD"))
        #expect(config.credentials.replication == nil)
        #expect(config.tls.mode == .disabled)
        #expect(config.tls.caFile == nil)
        #expect(config.cluster == defaults.cluster)
        #expect(config.cluster.name == "default")
        #expect(config.monitor == defaults.monitor)
        #expect(config.monitor.probeInterval == .milliseconds(500))
        #expect(config.monitor.probeTimeout == .milliseconds(400))
        #expect(config.heartbeat == defaults.heartbeat)
        #expect(config.heartbeat.interval == .milliseconds(250))
        #expect(config.lag == defaults.lag)
        #expect(config.lag.historyWindow == .seconds(600))
        #expect(config.admin == defaults.admin)
        #expect(config.admin.host == "127.0.0.1")
        #expect(config.admin.port == 6080)
        #expect(config.admin.token == nil)
    }

    @Test(
        arguments: [
            ("500ms", .milliseconds(500)), ("2s", .seconds(2)), ("1m", .seconds(60)), ("1.5s", .milliseconds(1500)),
            ("2", .seconds(2)), ("0.75", .milliseconds(750)), ("10ms", .milliseconds(10)),
        ] as [(String, Duration)])
    func durations(_ text: String, _ expected: Duration) throws {
        let yaml = Self.minimal + "heartbeat:\n  interval: \(text)\n"
        #expect(try Config.parse(yaml: yaml).heartbeat.interval == expected)
    }

    @Test func hoursAndMinutesForTheHistoryWindow() throws {
        let tenMinutes = try Config.parse(yaml: Self.minimal + "lag:\n  history_window: 10m\n")
        #expect(tenMinutes.lag.historyWindow == .seconds(600))
        let twoHours = try Config.parse(yaml: Self.minimal + "lag:\n  history_window: 2h\n")
        #expect(twoHours.lag.historyWindow == .seconds(7200))
    }

    @Test func heartbeatCanBeDisabledWithoutItsAccount() throws {
        let yaml =
            Self.minimal(
                replacing: "  heartbeat:\n    user: heartbeat\n    password_env: HEARTBEAT_PASSWORD\n", with: "")
            + "heartbeat:\n  enabled: false\n"
        let config = try Config.parse(yaml: yaml)
        #expect(!config.heartbeat.enabled)
        #expect(config.credentials.heartbeat == nil)
    }

    @Test func verifyIdentityWithACAFileIsValid() throws {
        let yaml = Self.minimal(replacing: "mode: disabled", with: "mode: verify_ca\n  ca_file: ca.pem")
        let config = try Config.parse(yaml: yaml, baseDirectory: "/srv")
        #expect(config.tls.mode == .verifyCA)
        #expect(config.tls.caFile == "/srv/ca.pem")
    }

    @Test func publicAdminListenWithATokenIsValid() throws {
        let config = try Config.parse(yaml: Self.minimal + "admin:\n  listen: 0.0.0.0:6080\n  token_env: ADMIN_TOKEN\n")
        #expect(config.admin.host == "0.0.0.0")
        #expect(config.admin.token == .environment("ADMIN_TOKEN"))
    }

    @Test func ipv6AdminListen() throws {
        let config = try Config.parse(yaml: Self.minimal + "admin:\n  listen: \"[::1]:6081\"\n")
        #expect(config.admin.host == "::1")
        #expect(config.admin.port == 6081)
    }

    // MARK: Errors name the key path

    @Test func unknownKeySuggestsTheClosestKnownKey() throws {
        let found = try Self.issue(
            at: "monitor.probe_intervall", in: Self.minimal + "monitor:\n  probe_intervall: 1s\n")
        #expect(found.message.contains("unknown key"))
        #expect(found.message.contains("did you mean 'probe_interval'?"))
        #expect(found.description.hasPrefix("monitor.probe_intervall: "))
    }

    @Test func unknownKeyFarFromAnyKnownKeyHasNoHint() throws {
        let found = try Self.issue(at: "monitor.colour", in: Self.minimal + "monitor:\n  colour: blue\n")
        #expect(found.message == "unknown key")
    }

    @Test func unknownTopLevelKey() throws {
        let found = try Self.issue(at: "severs", in: Self.minimal + "severs: []\n")
        #expect(found.message.contains("did you mean 'servers'?"))
    }

    @Test(arguments: ["fast", "5 s", "-1s", "1d", "ms"])
    func badDuration(_ text: String) throws {
        let yaml = Self.minimal + "monitor:\n  probe_interval: \(text)\n"
        let found = try Self.issue(at: "monitor.probe_interval", in: yaml)
        #expect(found.message.contains("expected a duration"))
    }

    @Test func durationOutOfRange() throws {
        let found = try Self.issue(at: "monitor.probe_interval", in: Self.minimal + "monitor:\n  probe_interval: 2m\n")
        #expect(found.message.contains("must be between 10ms and 1m"))
    }

    @Test(arguments: ["70000", "0", "-1", "mysql"])
    func portOutOfRangeNamesTheServer(_ port: String) throws {
        let found = try Self.issue(
            at: "servers[1].port", in: Self.minimal(replacing: "port: 3312", with: "port: \(port)"))
        #expect(found.message.contains(port))
    }

    private static let serverList = """
        servers:
          - name: s1
            host: 127.0.0.1
            port: 3311
          - name: s2
            host: 127.0.0.1
            port: 3312

        """

    @Test func missingServers() throws {
        let found = try Self.issue(at: "servers", in: Self.minimal(replacing: Self.serverList, with: ""))
        #expect(found.message.contains("missing"))
    }

    @Test func emptyServerList() throws {
        let found = try Self.issue(at: "servers", in: Self.minimal(replacing: Self.serverList, with: "servers: []\n"))
        #expect(found.message.contains("at least one server"))
    }

    @Test func serverWithoutNameOrHost() throws {
        let yaml = Self.minimal(replacing: "  - name: s2\n    host: 127.0.0.1\n    port: 3312", with: "  - port: 3312")
        let found = try Self.issues(yaml)
        #expect(found.contains(ConfigIssue(path: "servers[1].name", message: "missing")))
        #expect(found.contains(ConfigIssue(path: "servers[1].host", message: "missing")))
    }

    @Test func duplicateServerNames() throws {
        let found = try Self.issue(at: "servers[1].name", in: Self.minimal(replacing: "name: s2", with: "name: s1"))
        #expect(found.message.contains("'s1' is used by another server"))
    }

    @Test func duplicateServerAddress() throws {
        let found = try Self.issue(at: "servers[1]", in: Self.minimal(replacing: "port: 3312", with: "port: 3311"))
        #expect(found.message.contains("127.0.0.1:3311 is listed twice"))
    }

    @Test func localhostIsRejected() throws {
        let yaml = Self.minimal(
            replacing: "    host: 127.0.0.1\n    port: 3312", with: "    host: localhost\n    port: 3312")
        let found = try Self.issue(at: "servers[1].host", in: yaml)
        #expect(found.message.contains("use 127.0.0.1, not localhost"))
    }

    @Test(arguments: ["probe_timeout: 500ms", "probe_timeout: 1s"])
    func probeTimeoutMustBeShorterThanTheInterval(_ timeout: String) throws {
        let found = try Self.issue(
            at: "monitor.probe_timeout", in: Self.minimal + "monitor:\n  probe_interval: 500ms\n  \(timeout)\n")
        #expect(found.message.contains("shorter than monitor.probe_interval (500ms)"))
    }

    @Test(arguments: ["verify_identity", "verify_ca"])
    func verifyingTLSNeedsACAFile(_ mode: String) throws {
        let yaml = Self.minimal(replacing: "mode: disabled", with: "mode: \(mode)")
        let found = try Self.issue(at: "tls.ca_file", in: yaml)
        #expect(found.message.contains(mode))
    }

    @Test func tlsDefaultsToVerifyIdentityAndSoNeedsACAFile() throws {
        let found = try Self.issue(at: "tls.ca_file", in: Self.minimal(replacing: "tls:\n  mode: disabled\n", with: ""))
        #expect(found.message.contains("verify_identity"))
    }

    @Test func unknownTLSMode() throws {
        let yaml = Self.minimal(replacing: "mode: disabled", with: "mode: yes-please")
        let found = try Self.issue(at: "tls.mode", in: yaml)
        #expect(found.message.contains("disabled, required, verify_ca, verify_identity"))
    }

    @Test func certWithoutKey() throws {
        let yaml = Self.minimal(replacing: "mode: disabled", with: "mode: required\n  cert_file: c.pem")
        let found = try Self.issue(at: "tls", in: yaml)
        #expect(found.message.contains("cert_file and key_file go together"))
    }

    @Test(arguments: ["0.0.0.0:6080", "[::]:6080", "10.0.0.5:6080"])
    func publicAdminListenNeedsAToken(_ listen: String) throws {
        let found = try Self.issue(at: "admin.listen", in: Self.minimal + "admin:\n  listen: \"\(listen)\"\n")
        #expect(found.message.contains("not a loopback address"))
    }

    @Test(arguments: ["6080", "127.0.0.1", "127.0.0.1:99999", ":6080"])
    func malformedAdminListen(_ listen: String) throws {
        let found = try Self.issue(at: "admin.listen", in: Self.minimal + "admin:\n  listen: \"\(listen)\"\n")
        #expect(found.message.contains("expected host:port"))
    }

    @Test func inlinePasswordIsRejected() throws {
        let yaml = Self.minimal(replacing: "    password_env: MONITOR_PASSWORD", with: "    password: hunter2")
        let found = try Self.issues(yaml)
        #expect(found.contains { $0.path == "credentials.monitor.password" && $0.message.hasPrefix("unknown key") })
        #expect(
            found.contains {
                $0.path == "credentials.monitor" && $0.message.contains("missing password_env or password_file")
            })
        // The secret itself never ends up in an error message.
        #expect(!found.contains { $0.description.contains("hunter2") })
    }

    @Test func passwordEnvAndFileTogether() throws {
        let yaml = Self.minimal(
            replacing: "    password_env: MONITOR_PASSWORD",
            with: "    password_env: MONITOR_PASSWORD\n    password_file: monitor.pw")
        let found = try Self.issue(at: "credentials.monitor", in: yaml)
        #expect(found.message.contains("set only one of password_env and password_file"))
    }

    @Test func adminTokenEnvAndFileTogether() throws {
        let found = try Self.issue(
            at: "admin", in: Self.minimal + "admin:\n  token_env: ADMIN_TOKEN\n  token_file: admin.token\n")
        #expect(found.message.contains("set only one of token_env and token_file"))
    }

    @Test func missingMonitorCredentials() throws {
        let yaml = Self.minimal(
            replacing: "  monitor:\n    user: monitor\n    password_env: MONITOR_PASSWORD\n", with: "")
        let found = try Self.issue(at: "credentials.monitor", in: yaml)
        #expect(found.message.contains("missing"))
    }

    @Test func missingHeartbeatCredentialsWhileHeartbeatIsOn() throws {
        let yaml = Self.minimal(
            replacing: "  heartbeat:\n    user: heartbeat\n    password_env: HEARTBEAT_PASSWORD\n", with: "")
        let found = try Self.issue(at: "credentials.heartbeat", in: yaml)
        #expect(found.message.contains("heartbeat.enabled: false"))
    }

    @Test func wrongVersion() throws {
        let found = try Self.issue(at: "version", in: Self.minimal(replacing: "version: 1", with: "version: 2"))
        #expect(found.message.contains("reads config version 1, got 2"))
    }

    @Test func missingVersion() throws {
        let found = try Self.issue(at: "version", in: Self.minimal(replacing: "version: 1\n", with: ""))
        #expect(found.message.contains("missing"))
    }

    @Test func badHeartbeatTableName() throws {
        let yaml = Self.minimal + "heartbeat:\n  table: \"hb; DROP TABLE x\"\n"
        let found = try Self.issue(at: "heartbeat.table", in: yaml)
        #expect(found.message.contains("identifier"))
    }

    @Test func notAMapping() throws {
        let found = try Self.issue(at: "monitor", in: Self.minimal + "monitor: 5s\n")
        #expect(found.message.contains("expected a mapping"))
    }

    @Test func invalidYAML() throws {
        let found = try Self.issues("servers: [unclosed\n")
        #expect(found.count == 1)
        #expect(found.first?.path == "")
        #expect(found.first?.message.hasPrefix("not valid YAML") == true)
    }

    @Test func emptyFile() throws {
        #expect(try Self.issues("") == [ConfigIssue(path: "", message: "the file is empty")])
    }

    @Test func severalProblemsAreReportedTogether() throws {
        let yaml =
            Self.minimal(replacing: "port: 3312", with: "port: 70000")
            + "monitor:\n  probe_intervall: 1s\n  probe_timeout: soon\n"
        let error = try #require(throws: ConfigError.self) { try Config.parse(yaml: yaml, file: "switchyard.yaml") }
        #expect(error.issues.map(\.path) == ["servers[1].port", "monitor.probe_intervall", "monitor.probe_timeout"])
        #expect(error.description.hasPrefix("switchyard.yaml: 3 problems\n"))
        #expect(error.description.contains("  - servers[1].port: must be between 1 and 65535, got 70000"))
    }

    @Test func severalValidationProblemsAreReportedTogether() throws {
        let yaml = Self.minimal(replacing: "name: s2\n    host: 127.0.0.1", with: "name: s1\n    host: localhost")
            .replacingOccurrences(of: "mode: disabled", with: "mode: verify_identity")
        let paths = try Self.issues(yaml).map(\.path)
        #expect(paths == ["servers[1].name", "servers[1].host", "tls.ca_file"])
    }

    @Test func singleProblemDescription() {
        let error = ConfigError(file: "a.yaml", issues: [ConfigIssue(path: "version", message: "missing")])
        #expect(error.description == "a.yaml: 1 problem\n  - version: missing")
        #expect(ConfigIssue(path: "", message: "the file is empty").description == "the file is empty")
    }

    @Test func loadReportsAnUnreadableFile() throws {
        let path = NSTemporaryDirectory() + "/switchyard-missing-\(UUID().uuidString).yaml"
        let error = try #require(throws: ConfigError.self) { try Config.load(path: path) }
        #expect(error.file == path)
        #expect(error.issues.first?.message.hasPrefix("cannot read the file") == true)
    }

    @Test func loadResolvesRelativePathsAgainstTheFilesDirectory() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try directory.write("switchyard.yaml", Self.full)
        let config = try Config.load(path: path)
        #expect(config.credentials.monitor?.password == .file(directory.path + "/secrets/monitor.pw"))
    }

    // MARK: SecretResolver

    @Test func environmentSecret() throws {
        let resolver = SecretResolver(environment: ["MONITOR_PASSWORD": "s3cret"])
        #expect(try resolver.resolve(.environment("MONITOR_PASSWORD")) == "s3cret")
    }

    @Test func emptyEnvironmentSecretIsReturnedAsIs() throws {
        #expect(try SecretResolver(environment: ["EMPTY": ""]).resolve(.environment("EMPTY")) == "")
    }

    @Test func missingEnvironmentSecret() throws {
        let resolver = SecretResolver(environment: ["OTHER": "x"])
        let failure = try #require(throws: SecretResolver.Failure.self) {
            try resolver.resolve(.environment("MONITOR_PASSWORD"))
        }
        #expect(failure.secret == .environment("MONITOR_PASSWORD"))
        #expect(failure.description.contains("environment variable MONITOR_PASSWORD"))
        #expect(failure.description.contains("not set"))
    }

    @Test(arguments: [("s3cret\n", "s3cret"), ("s3cret", "s3cret"), ("s3cret\n\n", "s3cret"), ("s3cret\r\n", "s3cret")])
    func fileSecretTrailingNewlinesAreTrimmed(_ contents: String, _ expected: String) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try directory.write("monitor.pw", contents)
        #expect(try SecretResolver(environment: [:]).resolve(.file(path)) == expected)
    }

    @Test func fileSecretKeepsInnerAndLeadingWhitespace() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try directory.write("monitor.pw", " pass word\n")
        #expect(try SecretResolver(environment: [:]).resolve(.file(path)) == " pass word")
    }

    @Test func missingSecretFileNamesTheFile() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/absent.pw"
        let failure = try #require(throws: SecretResolver.Failure.self) {
            try SecretResolver(environment: [:]).resolve(.file(path))
        }
        #expect(failure.secret == .file(path))
        #expect(failure.description.contains(path))
    }

    @Test func checkReportsEveryUnreadableSecretByKeyPath() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        _ = try directory.write("secrets/monitor.pw", "pw\n")
        let config = try Config.parse(yaml: Self.full, baseDirectory: directory.path)
        let issues = SecretResolver(environment: [:]).check(config)
        #expect(
            issues.map(\.path) == [
                "credentials.heartbeat", "credentials.replication", "admin", "tls.ca_file", "tls.cert_file",
                "tls.key_file",
            ])
        #expect(issues[0].message.contains("SWITCHYARD_HEARTBEAT_PASSWORD"))
        let clean = SecretResolver(environment: ["MONITOR_PASSWORD": "a", "HEARTBEAT_PASSWORD": "b"])
        #expect(clean.check(try Config.parse(yaml: Self.minimal)).isEmpty)
    }
}

/// A scratch directory under NSTemporaryDirectory(), removed by the test that made it.
private struct TemporaryDirectory {
    let path: String

    init() throws {
        path = (NSTemporaryDirectory() as NSString).appendingPathComponent("switchyard-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// Writes `contents` to `name` (which may contain subdirectories) and returns the file's path.
    func write(_ name: String, _ contents: String) throws -> String {
        let file = (path as NSString).appendingPathComponent(name)
        try FileManager.default.createDirectory(
            atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(contents.utf8).write(to: URL(fileURLWithPath: file))
        return file
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}
