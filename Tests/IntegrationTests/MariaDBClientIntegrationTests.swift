import Foundation
import MariaDBClient
import MySQLWire
import Sandbox
import SwitchyardConfiguration
import Testing
import Topology

#if canImport(Glibc)
    import Glibc
#endif

extension IntegrationTests {
    @Test("MariaDBClient: verified TLS, rows by column name, typed errors, never plaintext, deadlines")
    func mariaDBClient() async throws {
        try await ClusterFixture.with(servers: 1) { cluster in
            let options = try cluster.appOptions("s1")
            let connection = try await MariaDBConnection.connect(options)
            let cipher = try await connection.cipher()
            #expect(cipher != nil)
            let result = try await connection.query("SELECT 1 AS one, NULL AS nothing, 'x' AS letter")
            #expect(result.rows.first?["one"] == "1")
            #expect(result.rows.first?["nothing"] == nil)
            #expect(result.rows.first?["LETTER"] == "x")
            try await connection.execute("CREATE TABLE k (id INT PRIMARY KEY)")
            #expect(try await connection.execute("INSERT INTO k VALUES (1), (2)") == 2)
            do {
                _ = try await connection.query("INSERT INTO k VALUES (1)")
                Issue.record("duplicate key accepted")
            } catch let error as MariaDBError {
                #expect(error.errno == 1062)
                #expect(error.sqlState == "23000")
                #expect(error.code == .query)
            }
            // The connection is still usable after a statement error.
            #expect(try await connection.query("SELECT COUNT(*) AS n FROM k").rows.first?["n"] == "2")
            connection.close()

            // Wrong password: 1045 / 28000.
            var wrong = options
            wrong.password = "nope"
            await #expect(throws: MariaDBError.self) { try await MariaDBConnection.connect(wrong) }
            do { _ = try await MariaDBConnection.connect(wrong) } catch let error as MariaDBError {
                #expect(error.errno == 1045)
                #expect(error.sqlState == "28000")
            }

            // A CA that did not sign the server's certificate: refused, not downgraded, also under
            // verify_ca (libmariadb verifies the chain whenever a CA is given; only the host check is off).
            for mode in [TLSMode.verifyIdentity, .verifyCA] {
                var wrongCA = options
                wrongCA.tls.mode = mode
                wrongCA.tls.caFile = cluster.manifest.directory + "/tls/server.pem"
                do {
                    _ = try await MariaDBConnection.connect(wrongCA)
                    Issue.record("\(mode): connected although the certificate cannot be verified")
                } catch let error as MariaDBError {
                    #expect(error.code == .tls || error.code == .connect)
                }
                var rightCA = options
                rightCA.tls.mode = mode
                let verified = try await MariaDBConnection.connect(rightCA)
                #expect(try await verified.cipher() != nil)
                verified.close()
            }

            // Plaintext to an account that requires TLS is refused by the server.
            var plaintext = options
            plaintext.tls.mode = .disabled
            do {
                _ = try await MariaDBConnection.connect(plaintext)
                Issue.record("plaintext login accepted for a REQUIRE SSL account")
            } catch let error as MariaDBError {
                #expect(error.errno == 1045)
            }

            // A hung server: the operation's deadline holds, whatever libmariadb's whole-second timeouts say.
            let busy = try await MariaDBConnection.connect(options)
            let s1 = cluster.instance("s1")
            #expect(ProcessControl.signal(s1.pid, SIGSTOP, marker: s1.defaultsFile))
            #expect(ProcessControl.waitUntilStopped(s1.pid, timeout: 5))
            let clock = ContinuousClock()
            let start = clock.now
            do {
                _ = try await busy.query("SELECT 1", deadline: .milliseconds(300))
                Issue.record("query on a stopped server returned")
            } catch let error as MariaDBError {
                #expect(error.code == .timeout)
            }
            #expect(clock.now - start < .seconds(1))
            do {
                _ = try await busy.query("SELECT 1", deadline: .milliseconds(300))
                Issue.record("second query on a hung connection ran")
            } catch let error as MariaDBError {
                #expect(error.code == .busy)
            }
            #expect(ProcessControl.signal(s1.pid, SIGCONT, marker: s1.defaultsFile))
        }
    }

    @Test("accounts read from mysql.user match a login and hold the stored native-password hash")
    func readAccounts() async throws {
        try await ClusterFixture.with(servers: 1) { cluster in
            let config = try cluster.config()
            let monitor = try #require(config.credentials.monitor)
            let password = try SecretResolver().resolve(monitor.password)
            let connection = try await MariaDBConnection.connect(
                ConnectionOptions(
                    host: "127.0.0.1", port: cluster.instance("s1").port, user: monitor.user, password: password,
                    tls: TLSOptions(mode: .verifyIdentity, caFile: cluster.manifest.caFile)))
            let accounts = try await connection.readAccounts()
            connection.close()
            // The sandbox runs with skip_name_resolve, like most deployments.
            #expect(!accounts.resolvesNames)
            let app = try #require(
                AccountMatcher.match(
                    user: "app", clientAddress: "127.0.0.1", in: accounts.accounts, resolvesNames: false)
            )
            #expect(app.plugin == "mysql_native_password")
            let stored = MySQLNativePassword.storedCredential(fromAuthenticationString: app.authenticationString)
            #expect(
                stored
                    == .nativePassword(
                        doubleSHA1: MySQLNativePassword.doubleSHA1(password: try cluster.manifest.password("app"))))
            #expect(
                AccountMatcher.match(
                    user: "app", clientAddress: "10.1.2.3", in: accounts.accounts, resolvesNames: false)
                    == nil)
        }
    }
}
