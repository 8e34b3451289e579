import Foundation
import SwitchyardConfiguration
import Testing
import Topology

@Suite("Config: the proxy section")
struct ProxyConfigTests {
    private static let base = """
        version: 1
        servers:
          - name: s1
            host: 127.0.0.1
            port: 3311
        credentials:
          monitor:
            user: monitor
            password_env: MONITOR_PASSWORD
        heartbeat:
          enabled: false
        tls:
          mode: verify_identity
          ca_file: /etc/switchyard/ca.pem

        """

    private func parse(_ proxy: String) throws(ConfigError) -> Config {
        try Config.parse(yaml: Self.base + proxy, baseDirectory: "/etc/switchyard")
    }

    private func issues(_ proxy: String) -> [ConfigIssue] {
        do {
            _ = try parse(proxy)
            return []
        } catch {
            return error.issues
        }
    }

    @Test("No section means no proxy; an empty one gets the defaults; enabled: false turns it off")
    func defaults() throws {
        #expect(try parse("").proxy == nil)
        let proxy = try #require(try parse("proxy: {}\n").proxy)
        #expect(proxy.host == "127.0.0.1" && proxy.port == 6033)
        #expect(proxy.backendTLS == .verifyIdentity)
        #expect(proxy.maxConnections == 1_000)
        #expect(proxy.authThrottleMaxFailures == 0)
        #expect(proxy.allowedNetworks.isEmpty)
        #expect(proxy.tlsFastPath && proxy.threads == nil && proxy.relayBusyPoll == nil)
        #expect(proxy.failoverHold == .seconds(10))
        #expect(try parse("proxy:\n  enabled: false\n").proxy == nil)
    }

    @Test("Every key is read; relative certificate paths are taken from the config's folder")
    func everyKey() throws {
        let proxy = try #require(
            try parse(
                """
                proxy:
                  listen: 0.0.0.0:7000
                  routing: primary
                  tls: {cert_file: tls/proxy.pem, key_file: /keys/proxy.key, client_ca_file: tls/clients.pem}
                  require_tls: true
                  backend_tls: verify_ca
                  max_connections: 50
                  handshake_timeout: 3s
                  backend_connect_timeout: 2s
                  max_packet_size: 1048576
                  allowed_networks: [10.0.0.0/8, "::1"]
                  users:
                    app: {allowed_networks: [192.168.0.0/16]}
                  account_refresh_interval: 5s
                  auth_throttle: {max_failures: 5, window: 30s}
                  tls_fast_path: false
                  threads: 3
                  failover_hold: 0s
                  relay_busy_poll: 75us

                """
            ).proxy)
        #expect(!proxy.tlsFastPath && proxy.threads == 3)
        #expect(proxy.failoverHold == .zero)
        #expect(proxy.relayBusyPoll == .microseconds(75))
        #expect(proxy.host == "0.0.0.0" && proxy.port == 7000)
        #expect(proxy.certFile == "/etc/switchyard/tls/proxy.pem" && proxy.keyFile == "/keys/proxy.key")
        #expect(proxy.clientCAFile == "/etc/switchyard/tls/clients.pem")
        #expect(proxy.requireTLS && proxy.backendTLS == .verifyCA)
        #expect(proxy.maxConnections == 50 && proxy.maxPacketSize == 1_048_576)
        #expect(proxy.handshakeTimeout == .seconds(3) && proxy.backendConnectTimeout == .seconds(2))
        #expect(proxy.allowedNetworks.map(\.description) == ["10.0.0.0/8", "::1"])
        #expect(proxy.userNetworks["app"]?.first?.contains("192.168.4.5") == true)
        #expect(proxy.accountRefreshInterval == .seconds(5))
        #expect(proxy.authThrottleMaxFailures == 5 && proxy.authThrottleWindow == .seconds(30))
    }

    @Test("A user defined in the config: its mysql_native_password hash, host and require_tls; never a password")
    func configuredAccounts() throws {
        let hash = "*" + String(repeating: "ab12", count: 10)
        let proxy = try #require(
            try parse(
                """
                proxy:
                  users:
                    app: {allowed_networks: [10.0.0.0/8]}
                    reporting: {password_hash: "\(hash)", host: "10.2.%", require_tls: true}
                    batch: {password_hash: "\(hash)"}

                """
            ).proxy)
        #expect(
            proxy.accounts.sorted { $0.user < $1.user } == [
                Account(
                    user: "batch", host: "%", plugin: "mysql_native_password", authenticationString: hash.uppercased()),
                Account(
                    user: "reporting", host: "10.2.%", plugin: "mysql_native_password",
                    authenticationString: hash.uppercased(), requiresTLS: true),
            ])
        #expect(proxy.userNetworks.keys.sorted() == ["app"], "no network limit where none is given")

        let found = issues(
            """
            proxy:
              users:
                a: {password_hash: "secret"}
                b: {password_hash: "*1234"}
                d: {password_hash: "*１２３４５６７８９０１２３４５６７８９０１２３４５６７８９０１２３４５６７８９０"}
                c: {host: "%"}

            """)
        #expect(found.contains { $0.path == "proxy.users.a.password_hash" && $0.message.contains("40 hex digits") })
        #expect(found.contains { $0.path == "proxy.users.b.password_hash" })
        #expect(
            found.contains { $0.path == "proxy.users.d.password_hash" }, "full-width digits are not hex digits here")
        #expect(found.contains { $0.path == "proxy.users.c.host" && $0.message.contains("password_hash") })
    }

    @Test("Durations below a millisecond keep their precision: microseconds, or fractions of a millisecond")
    func microsecondDurations() throws {
        #expect(try parse("proxy:\n  relay_busy_poll: 50µs\n").proxy?.relayBusyPoll == .microseconds(50))
        #expect(try parse("proxy:\n  relay_busy_poll: 0.25ms\n").proxy?.relayBusyPoll == .microseconds(250))
        #expect(try parse("proxy:\n  relay_busy_poll: 0\n").proxy?.relayBusyPoll == .zero)
        // Absurd numbers are an error naming the key, never a crash converting them.
        for absurd in ["1e30s", "1e300us", "inf", "nan", "-1ms"] {
            #expect(issues("proxy:\n  relay_busy_poll: \(absurd)\n").contains { $0.path == "proxy.relay_busy_poll" })
        }
    }

    @Test("Problems are reported with their key paths")
    func problems() {
        let found = issues(
            """
            proxy:
              listen: nowhere
              allowed_networks: [10.0.0.0/33]
              users:
                app: {allowed_networks: [banana]}
              require_tls: true
              routing: split
              max_conections: 5
              tls_fast_path: sometimes
              threads: 0
              failover_hold: forever
              relay_busy_poll: 20ms

            """)
        let paths = Set(found.map(\.path))
        #expect(paths.isSuperset(of: ["proxy.listen", "proxy.allowed_networks[0]", "proxy.routing"]))
        #expect(paths.contains("proxy.users.app.allowed_networks[0]"))
        #expect(paths.contains("proxy.tls_fast_path") && paths.contains("proxy.threads"))
        #expect(paths.contains("proxy.failover_hold"))
        #expect(found.contains { $0.path == "proxy.relay_busy_poll" && $0.message.contains("between 0s and 10ms") })
        #expect(found.contains { $0.path == "proxy.max_conections" && $0.message.contains("max_connections") })
    }

    @Test(
        "Cross-checks: require_tls and client_ca_file need a certificate; verified backend TLS needs tls.ca_file; not the admin address"
    )
    func crossChecks() {
        #expect(issues("proxy:\n  require_tls: true\n").contains { $0.path == "proxy.require_tls" })
        #expect(issues("proxy:\n  tls: {cert_file: a.pem}\n").contains { $0.path == "proxy.tls" })
        #expect(issues("proxy:\n  tls: {client_ca_file: ca.pem}\n").contains { $0.path == "proxy.tls.client_ca_file" })
        #expect(issues("proxy:\n  listen: 127.0.0.1:6080\n").contains { $0.path == "proxy.listen" })
        let noCA = Self.base.replacingOccurrences(
            of: "  mode: verify_identity\n  ca_file: /etc/switchyard/ca.pem\n", with: "  mode: disabled\n")
        let noCAIssues: [ConfigIssue]
        do {
            _ = try Config.parse(yaml: noCA + "proxy: {}\n")
            noCAIssues = []
        } catch {
            noCAIssues = error.issues
        }
        #expect(noCAIssues.contains { $0.path == "proxy.backend_tls" })
        // Plaintext to the servers is accepted when it is said explicitly.
        #expect((try? Config.parse(yaml: noCA + "proxy:\n  backend_tls: disabled\n"))?.proxy?.backendTLS == .disabled)
    }

    @Test("config check names unreadable proxy certificate files")
    func unreadableCertificate() throws {
        let config = try parse(
            "proxy:\n  tls: {cert_file: /nonexistent/proxy.pem, key_file: /nonexistent/proxy.key, "
                + "client_ca_file: /nonexistent/ca.pem}\n")
        let issues = SecretResolver(environment: ["MONITOR_PASSWORD": "x"]).check(config)
        #expect(issues.map(\.path).contains("proxy.tls.cert_file"))
        #expect(issues.map(\.path).contains("proxy.tls.key_file"))
        #expect(issues.map(\.path).contains("proxy.tls.client_ca_file"))
    }
}
