import Foundation
import Logging
import Monitor
import MySQLWire
import NIOCore
import Prometheus
import SQLProxy
import Sandbox
import SwitchyardConfiguration
import SwitchyardServer
import Synchronization
import TestSupport
import Testing
import Topology

#if canImport(Glibc)
    import Glibc
#endif

/// A running controller with the SQL proxy over a sandbox cluster.
struct ProxyFixture: Sendable {
    let cluster: ClusterFixture
    let controller: Controller
    let port: Int

    /// Starts the monitor and the proxy (with `adjust` applied to the sandbox's config), waits until the
    /// proxy accepts connections and knows the primary, runs `body`, then stops them.
    static func with<T>(
        _ cluster: ClusterFixture, _ adjust: (inout Config) -> Void = { _ in },
        _ body: (ProxyFixture) async throws -> T
    ) async throws -> T {
        let controller = try cluster.controller(adjust)
        let proxy = try #require(controller.proxy)
        let port = proxy.settings.port
        let monitor = Task { try await controller.monitor.run() }
        let serving = Task { try await proxy.run() }
        defer {
            monitor.cancel()
            serving.cancel()
        }
        try await poll("the proxy knows the primary", deadline: .seconds(10)) { proxy.state.primary != nil }
        try await poll("the proxy listens", deadline: .seconds(10)) {
            guard let fd = try? connectLoopback(port: port) else { return false }
            close(fd)
            return true
        }
        let result = try await body(ProxyFixture(cluster: cluster, controller: controller, port: port))
        serving.cancel()
        monitor.cancel()
        _ = await serving.result
        _ = await monitor.result
        return result
    }

    var appPassword: String { get throws { try cluster.manifest.password("app") } }

    /// The `mariadb` command-line client through the proxy, with verified TLS.
    func mariadb(_ sql: String, user: String = "app", password: String? = nil, extra: [String] = []) async throws
        -> ChildProcess.Result
    {
        let password = try password ?? appPassword
        let arguments =
            [
                "--no-defaults", "--host=127.0.0.1", "--port=\(port)", "--user=\(user)", "--password=\(password)",
                "--ssl", "--ssl-ca=\(cluster.manifest.caFile)", "--ssl-verify-server-cert", "--batch",
                "--skip-column-names",
            ] + extra + ["-e", sql]
        return try await offPool { try ChildProcess.capture("/usr/bin/mariadb", arguments) }
    }

    /// The `mariadb` client through the proxy without TLS (`--skip-ssl`), as the app user by default.
    func mariadbWithoutTLS(_ sql: String, user: String = "app", password: String? = nil) async throws
        -> ChildProcess.Result
    {
        let password = try password ?? appPassword
        let arguments = [
            "--no-defaults", "--host=127.0.0.1", "--port=\(port)", "--user=\(user)", "--password=\(password)",
            "--skip-ssl", "--batch", "--skip-column-names", "-e", sql,
        ]
        return try await offPool { try ChildProcess.capture("/usr/bin/mariadb", arguments) }
    }

    /// Runs a client program from Tests/Clients with the SY_* environment pointing at the proxy.
    func client(_ program: [String], extraEnvironment: [String] = []) async throws -> ChildProcess.Result {
        let environment = [
            "SY_HOST=127.0.0.1", "SY_PORT=\(port)", "SY_USER=app", "SY_PASSWORD=\(try appPassword)", "SY_DB=appdb",
            "SY_CA=\(cluster.manifest.caFile)",
        ]
        return try await offPool { try ChildProcess.capture("/usr/bin/env", environment + extraEnvironment + program) }
    }
}

/// The directory of the client programs (Tests/Clients).
func clientsDirectory() -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Clients").path
}

/// Builds Tests/Clients/libmariadb_features.c once per test run.
func libmariadbFeaturesBinary() async throws -> String {
    let output = NSTemporaryDirectory() + "switchyard-libmariadb-features-\(getpid())"
    if FileManager.default.isExecutableFile(atPath: output) { return output }
    let source = clientsDirectory() + "/libmariadb_features.c"
    let flags = try await offPool {
        try ChildProcess.run("/usr/bin/pkg-config", ["--cflags", "--libs", "libmariadb"])
    }.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
    let result = try await offPool {
        try ChildProcess.capture("/usr/bin/cc", ["-O1", "-Wall", "-o", output, source, "-lpthread"] + flags)
    }
    guard result.status == 0 else { throw Timeout(description: "cc failed: \(result.stderr)") }
    return output
}

extension IntegrationTests {
    @Test(
        "Proxy: the mariadb CLI logs in with verified TLS, its statements reach the primary over TLS, errors and ids are a server's"
    )
    func proxyWithMariaDBCLI() async throws {
        try await ClusterFixture.with { cluster in
            try await ProxyFixture.with(cluster) { proxy in
                let primaryPort = cluster.instance("s1").port
                let result = try await proxy.mariadb(
                    """
                    SELECT @@port, DATABASE(), CURRENT_USER();
                    SHOW SESSION STATUS LIKE 'Ssl_cipher';
                    CREATE TABLE IF NOT EXISTS appdb.cli_t (id INT PRIMARY KEY, v VARCHAR(20));
                    INSERT INTO appdb.cli_t VALUES (1, 'one');
                    SELECT v FROM appdb.cli_t;
                    """, extra: ["--database=appdb"])
                #expect(result.status == 0, "\(result.stderr)")
                let lines = result.stdout.split(separator: "\n").map(String.init)
                #expect(lines.first == "\(primaryPort)\tappdb\tapp@127.0.0.1")
                // The backend hop's cipher, reported by the server the statement ran on.
                let cipher = lines.dropFirst().first?.split(separator: "\t").last.map(String.init) ?? ""
                #expect(lines.dropFirst().first?.hasPrefix("Ssl_cipher\t") == true && !cipher.isEmpty, "\(lines)")
                #expect(lines.last == "one")

                // The client hop is TLS with the proxy's certificate, verified against the sandbox CA.
                let status = try await proxy.mariadb("\\s")
                #expect(status.stdout.contains("Cipher in use"), "\(status.stdout)")

                // A server error keeps its errno, SQLSTATE and text.
                let duplicate = try await proxy.mariadb("INSERT INTO appdb.cli_t VALUES (1, 'again')")
                #expect(duplicate.status != 0)
                #expect(duplicate.stderr.contains("ERROR 1062 (23000)"), "\(duplicate.stderr)")

                // CONNECTION_ID() is the id from the greeting, and KILL QUERY of that id reaches the session.
                // (Killing one's own query interrupts the KILL itself, as on a server: 1317.)
                let ids = try await proxy.mariadb("SELECT CONNECTION_ID(); KILL QUERY CONNECTION_ID()")
                #expect(ids.stderr.contains("ERROR 1317 (70100)"), "\(ids.stderr)")
                #expect(UInt32(ids.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0 > 0)
                // The column keeps the name a server gives it (clients read it by name); an alias is kept.
                let named = try await proxy.mariadb(
                    "SELECT CONNECTION_ID(), connection_id() AS id", extra: ["--column-names"])
                #expect(named.stdout.split(separator: "\n").first == "CONNECTION_ID()\tid", "\(named.stdout)")
                // Inside an expression too: the same column names as the server gives directly.
                let expressions =
                    "SELECT CONNECTION_ID()+0, CONCAT('x', connection_id()), (SELECT CONNECTION_ID()) IS NULL"
                let throughProxy = try await proxy.mariadb(expressions, extra: ["--column-names"])
                let socket = cluster.instance("s1").socket
                let direct = try await offPool {
                    try ChildProcess.capture(
                        "/usr/bin/mariadb",
                        ["--no-defaults", "-S", socket, "-u", "root", "--batch", "--column-names", "-e", expressions])
                }
                let header = direct.stdout.split(separator: "\n").first
                #expect(header == "CONNECTION_ID()+0\tCONCAT('x', connection_id())\t(SELECT CONNECTION_ID()) IS NULL")
                #expect(throughProxy.stdout.split(separator: "\n").first == header, "\(throughProxy.stdout)")
                let killed = try await proxy.mariadb("KILL QUERY 4000000000")
                #expect(killed.stderr.contains("ERROR 1094"), "\(killed.stderr)")

                // A TLS 1.2 client works the same.
                let tls12 = try await proxy.mariadb("SELECT 'tls12'", extra: ["--tls-version=TLSv1.2"])
                #expect(tls12.status == 0 && tls12.stdout.contains("tls12"), "\(tls12.stderr)")

                let metrics = try #require(proxy.controller.proxy?.metrics.totals())
                #expect(metrics.connectionsTotal >= 4)
                #expect(metrics.statementsTotal >= 5)
                #expect(metrics.errorsTotal >= 2)
                // Every session's two TLS hops (TLS 1.3 and 1.2) moved to the fast path after login.
                #expect(metrics.tlsFastPathUnavailable == 0)
                #expect(metrics.tlsFastPathHops == 2 * metrics.connectionsTotal, "\(metrics)")
                // Logged-in sessions are carried by the fast relay (and given back for what it leaves to NIO).
                #expect(metrics.fastRelayHandovers >= metrics.connectionsTotal - 1, "\(metrics)")

                // The same events in /metrics' text, by label.
                var exposition: [UInt8] = []
                proxy.controller.registry.emit(into: &exposition)
                let text = String(decoding: exposition, as: UTF8.self)
                for series in [
                    #"switchyard_proxy_connections_total{tls_version="TLSv1.3"}"#,
                    #"switchyard_proxy_connections_total{tls_version="TLSv1.2"}"#,
                    #"switchyard_proxy_user_connections_total{user="app"}"#,
                    #"switchyard_proxy_statements_total{command="query"}"#,
                    #"switchyard_proxy_errors_total{errno="1062"}"#, #"switchyard_proxy_errors_total{errno="1094"}"#,
                    #"switchyard_proxy_bytes_total{direction="from_client"}"#,
                    #"switchyard_proxy_bytes_total{direction="to_client"}"#,
                    #"switchyard_proxy_tls_fast_path_total{hop="client",result="active"}"#,
                    #"switchyard_proxy_tls_fast_path_total{hop="backend",result="active"}"#,
                    #"switchyard_proxy_fast_relay_total{event="handed_over"}"#,
                    "switchyard_proxy_backend_connect_seconds_count",
                ] {
                    let value = text.split(separator: "\n").first { $0.hasPrefix(series + " ") }?.split(separator: " ")
                        .last.flatMap { Double($0) }
                    #expect((value ?? 0) >= 1, "\(series) in:\n\(text)")
                }
            }
        }
    }

    @Test(
        "Proxy: wrong passwords get the server's 1045; a user created a moment ago logs in at once; REQUIRE SSL, require_secure_transport and unix_socket hold"
    )
    func proxyAuthentication() async throws {
        try await ClusterFixture.with(servers: 1) { cluster in
            try await ProxyFixture.with(cluster) { proxy in
                let wrong = try await proxy.mariadb("SELECT 1", password: "not-the-password")
                #expect(wrong.status != 0)
                #expect(
                    wrong.stderr.contains(
                        "ERROR 1045 (28000): Access denied for user 'app'@'127.0.0.1' (using password: YES)"),
                    "\(wrong.stderr)")
                let unknown = try await proxy.mariadb("SELECT 1", user: "nobody", password: "x")
                #expect(unknown.stderr.contains("ERROR 1045 (28000)"), "\(unknown.stderr)")

                // Created directly on the primary a moment ago: the proxy refreshes its accounts on the miss.
                try await cluster.rootSQL(
                    "s1",
                    "CREATE USER 'fresh'@'127.0.0.1' IDENTIFIED BY 'fresh-pw'; GRANT SELECT ON appdb.* TO 'fresh'@'127.0.0.1'"
                )
                let fresh = try await proxy.mariadb("SELECT CURRENT_USER()", user: "fresh", password: "fresh-pw")
                #expect(fresh.status == 0, "\(fresh.stderr)")
                #expect(fresh.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "fresh@127.0.0.1")

                // A changed password works at once too, and the old one no longer does.
                try await cluster.rootSQL("s1", "ALTER USER 'fresh'@'127.0.0.1' IDENTIFIED BY 'second-pw'")
                #expect(try await proxy.mariadb("SELECT 1", user: "fresh", password: "second-pw").status == 0)
                #expect(try await proxy.mariadb("SELECT 1", user: "fresh", password: "fresh-pw").status != 0)

                // An ed25519 account: the proxy passes the server's challenge to the client and verifies the
                // signature with the stored public key before handing it on.
                try await cluster.rootSQL(
                    "s1",
                    """
                    INSTALL SONAME 'auth_ed25519';
                    CREATE USER 'edu'@'127.0.0.1' IDENTIFIED VIA ed25519 USING PASSWORD('ed-pw') REQUIRE SSL;
                    GRANT SELECT ON appdb.* TO 'edu'@'127.0.0.1';
                    """)
                let ed = try await proxy.mariadb("SELECT CURRENT_USER()", user: "edu", password: "ed-pw")
                #expect(ed.status == 0, "\(ed.stderr)")
                #expect(ed.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "edu@127.0.0.1")
                let edWrong = try await proxy.mariadb("SELECT 1", user: "edu", password: "not-it")
                #expect(edWrong.stderr.contains("ERROR 1045 (28000)"), "\(edWrong.stderr)")

                // COM_CHANGE_USER to the ed25519 account (libmariadb's mysql_change_user, client_ed25519): the
                // backend's challenge reaches the client and its signature is verified; then back to app. A
                // wrong password gets 1045, and the proxy carries on.
                let features = try await libmariadbFeaturesBinary()
                for compress in ["0", "1"] {
                    for check in ["change_user", "change_user_denied"] {
                        let result = try await proxy.client(
                            [features, check],
                            extraEnvironment: [
                                "SY_OTHER_USER=edu", "SY_OTHER_PASSWORD=ed-pw", "SY_PROXY=1", "SY_COMPRESS=\(compress)",
                            ])
                        #expect(result.status == 0, "\(check), compress=\(compress): \(result.stdout)\(result.stderr)")
                    }
                }
                let after = try await proxy.mariadb("SELECT CURRENT_USER()", user: "edu", password: "ed-pw")
                #expect(
                    after.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "edu@127.0.0.1", "\(after.stderr)")

                // Client certificates. The sandbox's proxy asks TLS clients for one (proxy.tls.client_ca_file) and
                // shows the servers its own (tls.cert_file, the sandbox's server certificate, /CN=127.0.0.1).
                try await expectClientCertificates(proxy)

                // A database created a moment ago can be used at once.
                try await cluster.rootSQL("s1", "CREATE DATABASE justnow; GRANT ALL ON justnow.* TO 'app'@'127.0.0.1'")
                let use = try await proxy.mariadb("SELECT DATABASE()", extra: ["--database=justnow"])
                #expect(use.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "justnow", "\(use.stderr)")

                // The app account is REQUIRE SSL: a plaintext login through the proxy is refused like the server does.
                let plaintext = try await proxy.mariadbWithoutTLS("SELECT 1")
                #expect(plaintext.status != 0)
                #expect(plaintext.stderr.contains("ERROR 1045"), "\(plaintext.stderr)")
                // An account without REQUIRE SSL may log in without TLS on the same port; the server hop is
                // still TLS.
                try await cluster.rootSQL(
                    "s1",
                    "CREATE USER 'plain'@'127.0.0.1' IDENTIFIED BY 'plain-pw'; GRANT USAGE ON *.* TO 'plain'@'127.0.0.1'"
                )
                let plainLogin = try await proxy.mariadbWithoutTLS(
                    "SELECT CURRENT_USER(); SHOW SESSION STATUS LIKE 'Ssl_cipher'", user: "plain", password: "plain-pw")
                let plainLines = plainLogin.stdout.split(separator: "\n").map(String.init)
                #expect(plainLines.first == "plain@127.0.0.1", "\(plainLogin.stderr)")
                #expect(plainLines.last?.hasPrefix("Ssl_cipher\t") == true && plainLines.last != "Ssl_cipher\t")

                // With require_secure_transport on, the server refuses every plaintext TCP login with 1045; so
                // does the proxy once it has read the setting (with the accounts: here a failed login makes it
                // read them at once). TLS logins go on.
                try await cluster.rootSQL("s1", "SET GLOBAL require_secure_transport = ON")
                _ = try await proxy.mariadbWithoutTLS("SELECT 1", user: "plain", password: "not-it")
                let insecure = try await proxy.mariadbWithoutTLS("SELECT 1", user: "plain", password: "plain-pw")
                #expect(
                    insecure.stderr.contains(
                        "ERROR 1045 (28000): Access denied for user 'plain'@'127.0.0.1' (using password: YES)"),
                    "\(insecure.stdout)\(insecure.stderr)")
                #expect(try await proxy.mariadb("SELECT 1", user: "plain", password: "plain-pw").status == 0)
                try await cluster.rootSQL("s1", "SET GLOBAL require_secure_transport = OFF")

                // An account that authenticates by the client's Unix user (unix_socket) never can over TCP: the
                // server's answer is 1698, which names no password.
                try await cluster.rootSQL("s1", "CREATE USER 'osuser'@'127.0.0.1' IDENTIFIED VIA unix_socket")
                for password in ["", "x"] {
                    let socketOnly = try await proxy.mariadb("SELECT 1", user: "osuser", password: password)
                    #expect(
                        socketOnly.stderr.contains("ERROR 1698 (28000): Access denied for user 'osuser'@'127.0.0.1'\n"),
                        "\(socketOnly.stderr)")
                }
            }
        }
    }

    @Test("Proxy: a user defined in the config logs in against the config's entry, not the primary's mysql.user")
    func proxyConfiguredAccount() async throws {
        try await ClusterFixture.with(servers: 1) { cluster in
            // On the server the account allows plaintext; the config's entry for it requires TLS.
            let hash = try await cluster.rootSQL(
                "s1",
                """
                CREATE USER 'cfg'@'127.0.0.1' IDENTIFIED BY 'cfg-pw'; GRANT SELECT ON appdb.* TO 'cfg'@'127.0.0.1';
                SELECT PASSWORD('cfg-pw');
                """
            ).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(hash.hasPrefix("*") && hash.count == 41, "\(hash)")
            let account = Account(
                user: "cfg", host: "%", plugin: "mysql_native_password", authenticationString: hash, requiresTLS: true)
            try await ProxyFixture.with(cluster, { $0.proxy?.accounts = [account] }) { proxy in
                let login = try await proxy.mariadb("SELECT CURRENT_USER()", user: "cfg", password: "cfg-pw")
                #expect(
                    login.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "cfg@127.0.0.1", "\(login.stderr)")
                let wrong = try await proxy.mariadb("SELECT 1", user: "cfg", password: "other")
                #expect(wrong.stderr.contains("ERROR 1045"), "\(wrong.stderr)")
                let plaintext = try await proxy.mariadbWithoutTLS("SELECT 1", user: "cfg", password: "cfg-pw")
                #expect(plaintext.stderr.contains("ERROR 1045"), "the config's require_tls: \(plaintext.stdout)")
            }
        }
    }

    @Test(
        "Proxy: libmariadb features through the proxy (prepared, long data, cursors, bulk, multi-results, LOCAL INFILE)"
    )
    func proxyLibmariadbFeatures() async throws {
        let binary = try await libmariadbFeaturesBinary()
        try await ClusterFixture.with(servers: 1) { cluster in
            try await cluster.rootSQL(
                "s1",
                """
                CREATE USER 'app_other'@'127.0.0.1' IDENTIFIED BY 'other-pw' REQUIRE SSL;
                GRANT ALL ON appdb.* TO 'app_other'@'127.0.0.1';
                """)
            let checks = [
                "tls", "prepared", "long_data", "cursor", "bulk", "multi", "local_infile", "change_user",
                "reset_connection", "bigrow", "connection_id", "kill_query", "admin", "transactions", "compression",
            ]
            func runChecks(_ proxy: ProxyFixture, compress: String) async throws {
                for check in checks {
                    let result = try await proxy.client(
                        [binary, check],
                        extraEnvironment: [
                            "SY_OTHER_USER=app_other", "SY_OTHER_PASSWORD=other-pw", "SY_COMPRESS=\(compress)",
                            "SY_PROXY=1",
                        ])
                    #expect(result.status == 0, "\(check), compress=\(compress): \(result.stdout)\(result.stderr)")
                }
            }
            try await ProxyFixture.with(cluster) { proxy in
                // Every check with and without the compressed protocol on the client hop.
                for compress in ["0", "1"] { try await runChecks(proxy, compress: compress) }
                // Every uncompressed session was carried by the fast relay once logged in, and given back to
                // SwiftNIO for what the relay leaves to it (change of user, KILL, LOCAL INFILE, COM_QUIT).
                let metrics = try #require(proxy.controller.proxy?.metrics.totals())
                #expect(metrics.fastRelayHandovers >= checks.count, "\(metrics)")
                #expect(metrics.fastRelayReturns >= checks.count, "\(metrics)")
            }
            // The fallbacks the runbook offers when a fast path misbehaves: every session on SwiftNIO, and
            // TLS on NIOSSL after login too.
            try await ProxyFixture.with(
                cluster,
                {
                    $0.proxy?.fastRelay = false
                    $0.proxy?.tlsFastPath = false
                }
            ) { proxy in
                try await runChecks(proxy, compress: "0")
                let metrics = try #require(proxy.controller.proxy?.metrics.totals())
                #expect(metrics.fastRelayHandovers == 0 && metrics.tlsFastPathHops == 0, "\(metrics)")
            }
        }
    }

    @Test(
        "Proxy: a refused COM_CHANGE_USER keeps the session as MariaDB does (1045 after 1 s, old user, reset state, 1047 from the fourth)"
    )
    func proxyChangeUserRefused() async throws {
        let binary = try await libmariadbFeaturesBinary()
        try await ClusterFixture.with(servers: 1) { cluster in
            try await cluster.rootSQL(
                "s1",
                """
                INSTALL SONAME 'auth_ed25519';
                CREATE USER 'app_other'@'127.0.0.1' IDENTIFIED BY 'other-pw' REQUIRE SSL;
                GRANT ALL ON appdb.* TO 'app_other'@'127.0.0.1';
                CREATE USER 'edu'@'127.0.0.1' IDENTIFIED VIA ed25519 USING PASSWORD('ed-pw') REQUIRE SSL;
                GRANT ALL ON appdb.* TO 'edu'@'127.0.0.1';
                """)
            try await ProxyFixture.with(cluster) { proxy in
                // The same checks straight against the server and through the proxy, for a native-password and
                // an ed25519 target, with and without compression.
                // One run at a time: each blocks a Dispatch thread, which the proxy's account reads need too.
                let direct = cluster.instance("s1").port
                for (user, password) in [("app_other", "other-pw"), ("edu", "ed-pw")] {
                    for target in ["SY_PORT=\(direct)", "SY_PROXY=1"] {
                        for compress in ["SY_COMPRESS=0", "SY_COMPRESS=1"] {
                            for check in ["change_user_denied", "change_user_limit"] {
                                let result = try await proxy.client(
                                    [binary, check],
                                    extraEnvironment: [
                                        "SY_OTHER_USER=\(user)", "SY_OTHER_PASSWORD=\(password)", compress, target,
                                    ])
                                #expect(
                                    result.status == 0,
                                    "\(check) \(user) \(target) \(compress): \(result.stdout)\(result.stderr)")
                            }
                        }
                    }
                }
                // Through the proxy: one refusal per change_user_denied run, three 1045s per change_user_limit
                // run (its 1047s are not failed logins), each counted once.
                let metrics = try #require(proxy.controller.proxy?.metrics.totals())
                #expect(metrics.failedLogins == 2 * 2 * (1 + 3), "\(metrics)")
            }
        }
    }

    @Test("Proxy: Python (PyMySQL) and Perl (DBD::MariaDB) workloads run through the proxy unchanged")
    func proxyClientLibraries() async throws {
        try await ClusterFixture.with(servers: 1) { cluster in
            try await ProxyFixture.with(cluster) { proxy in
                let python = try await proxy.client(["/usr/bin/python3", clientsDirectory() + "/pymysql_workload.py"])
                #expect(python.status == 0, "\(python.stdout)\(python.stderr)")
                let perl = try await proxy.client(["/usr/bin/perl", clientsDirectory() + "/dbd_mariadb_workload.pl"])
                #expect(perl.status == 0, "\(perl.stdout)\(perl.stderr)")
            }
        }
    }

    @Test(
        "Proxy limits: allowlists, max connections, require_tls, handshake timeout and bad bytes end one session only")
    func proxyLimits() async throws {
        try await ClusterFixture.with(servers: 1) { cluster in
            // Only 10.0.0.0/8 may connect: 127.0.0.1 gets the server's 1130.
            try await ProxyFixture.with(cluster, { $0.proxy?.allowedNetworks = [CIDR("10.0.0.0/8")!] }) { proxy in
                let refused = try await proxy.mariadb("SELECT 1")
                #expect(refused.stderr.contains("1130"), "\(refused.stderr)")
            }
            // Per user: app may only come from 10.0.0.0/8.
            try await ProxyFixture.with(cluster, { $0.proxy?.userNetworks = ["app": [CIDR("10.0.0.0/8")!]] }) { proxy in
                let refused = try await proxy.mariadb("SELECT 1")
                #expect(refused.stderr.contains("ERROR 1045"), "\(refused.stderr)")
            }
            try await ProxyFixture.with(
                cluster,
                {
                    $0.proxy?.maxConnections = 2
                    $0.proxy?.requireTLS = true
                    $0.proxy?.handshakeTimeout = .seconds(2)
                    $0.proxy?.authThrottleMaxFailures = 2
                }
            ) { proxy in
                // Two idle clients fill the proxy (each has its greeting, so each holds a slot; the
                // readiness probe's connection may still hold one for a moment); a third gets 1040.
                func idleClient() async throws -> RawConnection {
                    var client: RawConnection?
                    try await poll("a free slot", deadline: .seconds(5)) {
                        let candidate = try RawConnection(port: proxy.port)
                        let greeting = try candidate.receive()
                        guard greeting.payload.getInteger(at: greeting.payload.readerIndex, as: UInt8.self) == 0x0A
                        else { return false }
                        client = candidate
                        return true
                    }
                    return try #require(client)
                }
                let idle = [try await idleClient(), try await idleClient()]
                let third = try await proxy.mariadb("SELECT 1")
                #expect(third.stderr.contains("1040"), "\(third.stderr)")

                // The idle ones are disconnected by the handshake timeout; then logins work again.
                try await poll("handshake timeout", deadline: .seconds(5)) {
                    proxy.controller.proxy?.state.sessionCount == 0
                }
                #expect(idle.count == 2)
                #expect(try await proxy.mariadb("SELECT 1").status == 0)

                // require_tls: a plaintext login is refused with 3159.
                let plaintext = try await proxy.mariadbWithoutTLS("SELECT 1")
                #expect(plaintext.stderr.contains("3159"), "\(plaintext.stderr)")

                // Garbage instead of a handshake response: ERR 1043 and close; the proxy serves the next client.
                let raw = try RawConnection(port: proxy.port)
                let greeting: MySQLPacket? = try raw.receive()
                #expect(greeting != nil)
                try raw.send(MySQLPacket(sequenceID: 1, payload: ByteBuffer(bytes: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF])))
                let answer: MySQLPacket? = try raw.receive()
                #expect(answer?.payload.getInteger(at: answer!.payload.readerIndex, as: UInt8.self) == 0xFF)
                #expect(try await proxy.mariadb("SELECT 1").status == 0)

                // An SSLRequest, then a plaintext login instead of a TLS handshake: the connection closes
                // with no login (at most a TLS alert record comes back); the next client is served.
                let downgrade = try RawConnection(port: proxy.port)
                _ = try downgrade.receive()
                let capabilities: CapabilityFlags = [.protocol41, .ssl, .secureConnection, .pluginAuth]
                var request = ByteBuffer()
                request.writeInteger(UInt32(truncatingIfNeeded: capabilities.rawValue), endianness: .little)
                request.writeInteger(UInt32(1 << 24), endianness: .little)
                request.writeInteger(UInt8(45))
                request.writeRepeatingByte(0, count: 23)
                try downgrade.send(MySQLPacket(sequenceID: 1, payload: request))
                var login = request
                login.writeString("app\0")
                login.writeInteger(UInt8(0))
                try downgrade.send(MySQLPacket(sequenceID: 2, payload: login))
                let (after, closed) = downgrade.readUntilClosed()
                #expect(closed, "the proxy kept a connection that broke off its TLS handshake")
                #expect(after.isEmpty || after.first == 0x15, "not a TLS alert: \(after.prefix(16))")
                #expect(try await proxy.mariadb("SELECT 1").status == 0)

                // Throttling (configured here; off by default): after two failures from this address even
                // the right password is refused for the window, with the server's 4151.
                for _ in 0..<2 {
                    let wrong = try await proxy.mariadb("SELECT 1", password: "wrong")
                    #expect(wrong.stderr.contains("ERROR 1045"), "\(wrong.stderr)")
                }
                let blocked = try await proxy.mariadb("SELECT 1")
                #expect(blocked.stderr.contains("ERROR 4151"), "\(blocked.stderr)")
            }
        }
    }
}

extension IntegrationTests {
    @Test(
        "Proxy TLS: the backend hop never falls back to plaintext; `disabled` only when configured; certificates and the servers' CA reload"
    )
    func proxyTLSPolicies() async throws {
        try await ClusterFixture.with(servers: 1) { cluster in
            let directory = cluster.manifest.directory
            let tlsDirectory = (cluster.manifest.caFile as NSString).deletingLastPathComponent
            // The proxy presents its own copy of the certificate, so it can be replaced under it.
            let certFile = directory + "/proxy.pem"
            let keyFile = directory + "/proxy.key"
            try FileManager.default.copyItem(atPath: tlsDirectory + "/server.pem", toPath: certFile)
            try FileManager.default.copyItem(atPath: tlsDirectory + "/server.key", toPath: keyFile)
            try await cluster.rootSQL(
                "s1",
                "CREATE USER 'plain'@'127.0.0.1' IDENTIFIED BY 'plain-pw'; GRANT SELECT ON appdb.* TO 'plain'@'127.0.0.1'"
            )
            try await ProxyFixture.with(
                cluster,
                {
                    $0.proxy?.certFile = certFile
                    $0.proxy?.keyFile = keyFile
                }
            ) { proxy in
                let main = try #require(proxy.controller.proxy)
                let primary = ProxyService.Primary(
                    server: .init(name: "s1", host: "127.0.0.1", port: cluster.instance("s1").port), version: nil)
                /// A second proxy over the same cluster and accounts, with other backend TLS settings.
                func withProxy(_ backendTLS: ProxySettings.BackendTLS, _ body: (Int) async throws -> Void) async throws
                {
                    var settings = main.settings
                    settings.port = try freePortRange(count: 1)
                    settings.backendTLS = backendTLS
                    let other = try ProxyService(
                        settings: settings, accounts: main.accounts, metrics: main.metrics, primary: { primary },
                        followInterval: .milliseconds(50), accountRefreshInterval: .seconds(60),
                        logger: Logger(label: "test-proxy"))
                    let serving = Task { try await other.run() }
                    defer { serving.cancel() }
                    try await poll("second proxy ready", deadline: .seconds(10)) {
                        guard other.state.primary != nil, let fd = try? connectLoopback(port: settings.port) else {
                            return false
                        }
                        close(fd)
                        return true
                    }
                    try await body(settings.port)
                    serving.cancel()
                    _ = await serving.result
                }
                func mariadb(port: Int, user: String, password: String, _ sql: String) async throws
                    -> ChildProcess.Result
                {
                    let ca = cluster.manifest.caFile
                    return try await offPool {
                        try ChildProcess.capture(
                            "/usr/bin/mariadb",
                            [
                                "--no-defaults", "--host=127.0.0.1", "--port=\(port)", "--user=\(user)",
                                "--password=\(password)", "--ssl", "--ssl-ca=\(ca)", "--ssl-verify-server-cert",
                                "--batch", "--skip-column-names", "-e", sql,
                            ])
                    }
                }

                // Servers whose certificate the configured CA did not sign: refused (1105 naming the reason), never
                // plaintext. (libmariadb turns client-range errnos such as 2003 from a server into 2027.)
                let otherCA = directory + "/other-ca.pem"
                _ = try await offPool {
                    try ChildProcess.run(
                        "/usr/bin/openssl",
                        [
                            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=Other CA",
                            "-keyout", directory + "/other-ca.key", "-out", otherCA,
                        ])
                }
                try await withProxy(.verified(caFile: otherCA, verifyHostname: true)) { port in
                    let refused = try await mariadb(port: port, user: "plain", password: "plain-pw", "SELECT 1")
                    #expect(refused.status != 0)
                    #expect(
                        refused.stderr.contains("ERROR 1105")
                            && refused.stderr.contains("not signed by the configured CA"), "\(refused.stderr)")
                    // The CA file rotated to the right CA (written aside, then renamed over it): new server
                    // connections verify against it within a second or so, without a restart.
                    try FileManager.default.copyItem(atPath: cluster.manifest.caFile, toPath: otherCA + ".new")
                    guard rename(otherCA + ".new", otherCA) == 0 else { throw Timeout(description: "rename failed") }
                    try await poll("logins verify against the rotated CA", deadline: .seconds(10)) {
                        try await mariadb(port: port, user: "plain", password: "plain-pw", "SELECT 1").status == 0
                    }
                }
                // backend_tls: disabled, said explicitly: the server hop is plaintext (no cipher), and a
                // REQUIRE SSL account is refused by the server itself.
                try await withProxy(.disabled) { port in
                    let plain = try await mariadb(
                        port: port, user: "plain", password: "plain-pw", "SHOW SESSION STATUS LIKE 'Ssl_cipher'")
                    #expect(plain.status == 0, "\(plain.stderr)")
                    #expect(plain.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "Ssl_cipher")
                    let app = try await mariadb(port: port, user: "app", password: try proxy.appPassword, "SELECT 1")
                    #expect(app.stderr.contains("ERROR 1045"), "\(app.stderr)")
                }
                // The default (verify_identity) hop is encrypted.
                let encrypted = try await proxy.mariadb(
                    "SHOW SESSION STATUS LIKE 'Ssl_cipher'", user: "plain", password: "plain-pw")
                #expect(encrypted.stdout.contains("TLS_"), "\(encrypted.stdout)")

                // Certificate rotation: replace the files; new connections get the new certificate.
                func presentedSubject() async throws -> String {
                    let port = proxy.port
                    let result = try await offPool {
                        try ChildProcess.capture(
                            "/bin/sh",
                            [
                                "-c",
                                "openssl s_client -starttls mysql -connect 127.0.0.1:\(port) </dev/null 2>/dev/null",
                            ])
                    }
                    return result.stdout.split(separator: "\n").first { $0.hasPrefix("subject=") }.map(String.init)
                        ?? ""
                }
                #expect(try await presentedSubject().contains("127.0.0.1"))
                let script = """
                    set -e; cd '\(directory)'
                    openssl req -newkey rsa:2048 -nodes -subj '/CN=rotated' -keyout new.key -out new.csr 2>/dev/null
                    printf 'subjectAltName=IP:127.0.0.1\\n' > new.ext
                    openssl x509 -req -in new.csr -CA '\(cluster.manifest.caFile)' -CAkey '\(tlsDirectory)/ca.key' \\
                      -CAcreateserial -days 1 -out new.pem -extfile new.ext 2>/dev/null
                    mv new.key proxy.key; mv new.pem proxy.pem
                    """
                let rotated = try await offPool { try ChildProcess.capture("/bin/sh", ["-c", script]) }
                #expect(rotated.status == 0, "\(rotated.stderr)")
                try await poll("the new certificate is presented", deadline: .seconds(10), every: .milliseconds(300)) {
                    try await presentedSubject().contains("rotated")
                }
                // And it verifies against the CA as before.
                #expect(try await proxy.mariadb("SELECT 1").status == 0)

                // A server certificate the CA signed for another name (s1 reloads its files with FLUSH SSL):
                // verify_identity refuses it (1105 naming the reason); verify_ca, which skips the name, does not.
                let renamed = try await offPool {
                    try ChildProcess.capture(
                        "/bin/sh",
                        [
                            "-c",
                            """
                            set -e; cd '\(tlsDirectory)'
                            openssl req -newkey rsa:2048 -nodes -subj '/CN=elsewhere' -keyout other.key -out other.csr 2>/dev/null
                            printf 'subjectAltName=DNS:elsewhere.invalid\\n' > other.ext
                            openssl x509 -req -in other.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \\
                              -out other.pem -extfile other.ext 2>/dev/null
                            cp other.pem server.pem; cp other.key server.key
                            """,
                        ])
                }
                #expect(renamed.status == 0, "\(renamed.stderr)")
                try await cluster.rootSQL("s1", "FLUSH SSL")
                let ca = cluster.manifest.caFile
                try await withProxy(.verified(caFile: ca, verifyHostname: true)) { port in
                    let refused = try await mariadb(port: port, user: "plain", password: "plain-pw", "SELECT 1")
                    #expect(
                        refused.stderr.contains("ERROR 1105")
                            && refused.stderr.contains("does not match the configured host name or IP"),
                        "\(refused.stderr)")
                }
                try await withProxy(.verified(caFile: ca, verifyHostname: false)) { port in
                    let accepted = try await mariadb(port: port, user: "plain", password: "plain-pw", "SELECT 7")
                    #expect(
                        accepted.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "7", "\(accepted.stderr)")
                }
            }
        }
    }
}

extension IntegrationTests {
    @Test("Proxy streams a large result to a slow reader with flat memory (backpressure to the server)")
    func proxyStreamsWithBackpressure() async throws {
        try await ClusterFixture.with(servers: 1) { cluster in
            // With the fast relay carrying the session, and with it and the TLS fast path turned off (then
            // SwiftNIO's autoRead is the backpressure); one after the other, as memory is this process's.
            for fastPaths in [true, false] {
                try await streamToSlowReader(cluster, fastPaths: fastPaths)
            }
        }
    }

    private func streamToSlowReader(_ cluster: ClusterFixture, fastPaths: Bool) async throws {
        try await ProxyFixture.with(
            cluster,
            {
                $0.proxy?.fastRelay = fastPaths
                $0.proxy?.tlsFastPath = fastPaths
            }
        ) { proxy in
            let rows = 100_000
            let rowBytes = 1_000
            let ca = cluster.manifest.caFile
            let password = try proxy.appPassword
            // The reader sleeps before draining, so the proxy must stop reading from the server.
            let command = """
                mariadb --no-defaults --host=127.0.0.1 --port=\(proxy.port) --user=app --password='\(password)' \
                  --ssl --ssl-ca='\(ca)' --ssl-verify-server-cert --quick --batch --skip-column-names appdb \
                  -e "SELECT REPEAT('x', \(rowBytes)) FROM seq_1_to_\(rows)" | (sleep 4; wc -c)
                """
            let before = residentBytes()
            let finished = Flag()
            let reading = Task {
                defer { finished.set() }
                return try await offPool {
                    try ChildProcess.capture("/bin/bash", ["-o", "pipefail", "-c", command])
                }
            }
            var peak = before
            while !finished.isSet {
                peak = max(peak, residentBytes())
                try await Task.sleep(for: .milliseconds(100))
            }
            let result = try await reading.value
            #expect(result.status == 0, "\(result.stderr)")
            #expect(Int(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) == rows * (rowBytes + 1))
            let growth = peak - before
            #expect(
                growth < 48 * 1024 * 1024,
                "the proxy's memory grew by \(growth / 1_048_576) MiB for a 100 MB result (fast paths: \(fastPaths))")
            let metrics = try #require(proxy.controller.proxy?.metrics.totals())
            #expect((metrics.fastRelayHandovers > 0) == fastPaths, "\(metrics)")
        }
    }
}

/// This process's resident memory (the proxy runs in it here).
func residentBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    return fields.count > 1 ? (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE))) : 0
}

final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}
