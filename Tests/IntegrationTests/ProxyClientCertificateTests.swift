import Foundation
import Sandbox
import TestSupport
import Testing

/// Accounts that `REQUIRE X509`, `ISSUER` or `SUBJECT`, through the sandbox's proxy, which asks TLS clients
/// for a certificate signed by the sandbox CA and shows the servers its own (`/CN=127.0.0.1`, issued by
/// `/CN=Switchyard sandbox CA`). The `mariadb` client presents the sandbox's client certificate
/// (`/CN=Switchyard sandbox client`) or the server certificate.
func expectClientCertificates(_ proxy: ProxyFixture) async throws {
    let cluster = proxy.cluster
    let tls = cluster.manifest.directory + "/tls"
    let clientCertificate = ["--ssl-cert=\(tls)/client.pem", "--ssl-key=\(tls)/client.key"]
    let serverCertificate = ["--ssl-cert=\(tls)/server.pem", "--ssl-key=\(tls)/server.key"]
    let ca = "/CN=Switchyard sandbox CA"
    try await cluster.rootSQL(
        "s1",
        """
        CREATE USER 'certu'@'127.0.0.1' IDENTIFIED BY 'cert-pw' REQUIRE X509;
        CREATE USER 'issueru'@'127.0.0.1' IDENTIFIED BY 'cert-pw' REQUIRE ISSUER '\(ca)';
        CREATE USER 'subju'@'127.0.0.1' IDENTIFIED BY 'cert-pw' REQUIRE SUBJECT '/CN=Switchyard sandbox client';
        CREATE USER 'proxysubju'@'127.0.0.1' IDENTIFIED BY 'cert-pw'
          REQUIRE SUBJECT '/CN=127.0.0.1' AND ISSUER '\(ca)';
        GRANT USAGE ON *.* TO 'certu'@'127.0.0.1', 'issueru'@'127.0.0.1', 'subju'@'127.0.0.1',
          'proxysubju'@'127.0.0.1';
        """)
    func login(_ user: String, _ extra: [String]) async throws -> ChildProcess.Result {
        try await proxy.mariadb("SELECT CURRENT_USER()", user: user, password: "cert-pw", extra: extra)
    }
    func expectIn(_ result: ChildProcess.Result, as user: String, _ comment: String) {
        #expect(result.status == 0, "\(comment): \(result.stderr)")
        #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "\(user)@127.0.0.1", "\(comment)")
    }
    func expectRefused(_ result: ChildProcess.Result, _ user: String, _ comment: String) {
        #expect(
            result.stderr.contains(
                "ERROR 1045 (28000): Access denied for user '\(user)'@'127.0.0.1' (using password: YES)"),
            "\(comment): \(result.stderr)")
    }

    // Without a certificate, refused as the server refuses (the proxy's log says why).
    expectRefused(try await login("certu", []), "certu", "REQUIRE X509 without a certificate")
    expectIn(try await login("certu", clientCertificate), as: "certu", "REQUIRE X509 with the client certificate")
    expectIn(
        try await login("issueru", clientCertificate), as: "issueru", "REQUIRE ISSUER with the client certificate")
    // The server checks the proxy's certificate, whose subject is not the client's: refused by the proxy
    // before the server is asked. Directly, the server takes it.
    expectRefused(try await login("subju", clientCertificate), "subju", "REQUIRE SUBJECT of the client's")
    let direct = try await offPool {
        try ChildProcess.capture(
            "/usr/bin/mariadb",
            [
                "--no-defaults", "--host=127.0.0.1", "--port=\(cluster.manifest.instances[0].port)", "--user=subju",
                "--password=cert-pw", "--ssl-ca=\(cluster.manifest.caFile)", "--ssl-verify-server-cert",
            ] + clientCertificate + ["--batch", "--skip-column-names", "-e", "SELECT CURRENT_USER()"])
    }
    expectIn(direct, as: "subju", "REQUIRE SUBJECT of the client's, directly")
    // A subject and issuer the proxy reads from the client's certificate exactly as the server reads them
    // from the proxy's (the same certificate): both checks pass.
    expectIn(
        try await login("proxysubju", serverCertificate), as: "proxysubju",
        "REQUIRE SUBJECT and ISSUER of the proxy's own certificate")
    expectRefused(
        try await login("proxysubju", clientCertificate), "proxysubju", "REQUIRE SUBJECT, another certificate")

    // A certificate the sandbox CA did not sign ends the TLS handshake; everyone else carries on.
    let stranger = NSTemporaryDirectory() + "switchyard-stranger-\(getpid())"
    try FileManager.default.createDirectory(atPath: stranger, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: stranger) }
    _ = try await offPool {
        try ChildProcess.run(
            "/usr/bin/openssl",
            [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Stranger",
                "-keyout", stranger + "/key.pem", "-out", stranger + "/cert.pem",
            ])
    }
    let refused = try await login(
        "certu", ["--ssl-cert=\(stranger)/cert.pem", "--ssl-key=\(stranger)/key.pem"])
    #expect(refused.status != 0)
    // (2026 when the client hears the alert in the handshake; with TLS 1.3 it may hear it only after.)
    #expect(
        refused.stderr.contains("ERROR 2026") || refused.stderr.contains("ERROR 2013"), "\(refused.stderr)")
    #expect(!refused.stderr.contains("ERROR 1045"), "\(refused.stderr)")
    expectIn(try await login("certu", clientCertificate), as: "certu", "after a stranger's certificate")
    // Accounts without a requirement log in with or without a certificate.
    #expect(try await proxy.mariadb("SELECT 1", extra: clientCertificate).status == 0)
}
