import Foundation
import Sandbox
import Testing

/// Behaviour found different from the server's by running MariaDB's own test cases (mariadb-test) through
/// the proxy; each test states what the server does and checks the proxy does the same.
@Suite("Proxy compatibility (integration)", .serialized)
struct ProxyCompatibilityIntegrationTests {
    @Test(
        "Proxy: 'u'@'localhost' neither matches nor shadows a TCP login when the server skips name resolution")
    func proxyLocalhostAccounts() async throws {
        try await ClusterFixture.with(servers: 1) { cluster in
            // The sandbox runs with skip_name_resolve (as MariaDB's docs advise) and has root@localhost
            // (unix_socket or an empty password). The server picks 'u'@'127.0.0.1' for a TCP client from
            // 127.0.0.1 and never 'u'@'localhost'.
            try await cluster.rootSQL(
                "s1",
                """
                CREATE USER 'root'@'127.0.0.1' IDENTIFIED BY 'root-tcp-pw';
                GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
                CREATE USER 'shadow'@'localhost' IDENTIFIED BY 'local-pw';
                CREATE USER 'shadow'@'127.0.0.1' IDENTIFIED BY 'tcp-pw';
                CREATE USER 'onlylocal'@'localhost' IDENTIFIED BY 'local-pw';
                """)
            try await ProxyFixture.with(cluster) { proxy in
                for (user, password) in [("root", "root-tcp-pw"), ("shadow", "tcp-pw")] {
                    let login = try await proxy.mariadb("SELECT CURRENT_USER()", user: user, password: password)
                    #expect(
                        login.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "\(user)@127.0.0.1",
                        "\(user): \(login.stderr)")
                }
                for (user, password) in [("shadow", "local-pw"), ("onlylocal", "local-pw")] {
                    let refused = try await proxy.mariadb("SELECT 1", user: user, password: password)
                    #expect(refused.stderr.contains("ERROR 1045"), "\(user): \(refused.stdout)\(refused.stderr)")
                }
            }
        }
    }
}
