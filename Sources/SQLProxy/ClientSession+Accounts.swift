import Logging
import MySQLWire
import NIOCore
import NIOSSL
import Topology

/// What an account of the primary's (or of the config's) lets a client do through the proxy: the stored
/// secret the proxy verifies a login with, and the server's rules the proxy applies itself.
extension ClientSession {
    /// The plugin that checks the client's operating-system user on a Unix socket: never satisfied over TCP,
    /// where the server refuses it with 1698.
    static let socketPeerPlugin = "unix_socket"

    static func credential(_ account: Account) -> StoredCredential? {
        switch account.plugin {
        case "mysql_native_password", "":
            MySQLNativePassword.storedCredential(fromAuthenticationString: account.authenticationString)
        case MariaDBEd25519.serverPluginName:
            MariaDBEd25519.storedCredential(fromAuthenticationString: account.authenticationString)
        default:
            nil
        }
    }

    /// The certificates a login's account may require: the client's (verified against
    /// `proxy.tls.client_ca_file`) and the proxy's own, which the server checks in turn.
    struct Certificates {
        /// The client's certificate, when it presented one.
        var client: CertificateNames?
        /// The certificate the proxy shows the servers (`tls.cert_file`).
        var proxy: CertificateNames?
        /// Whether the proxy asks TLS clients for a certificate (`proxy.tls.client_ca_file` is set).
        var asked = false
    }

    /// This session's certificates.
    var certificates: Certificates {
        Certificates(
            client: clientCertificate, proxy: environment.backendTLS?.shownCertificate(),
            asked: environment.serverTLS?.asksForCertificates ?? false)
    }

    /// Why `account` may not log in on a session (over TLS or not, with these certificates) whatever the
    /// password: the server's rules that the proxy applies itself. Nil when it may.
    static func loginRefusal(_ account: Account, tls: Bool, certificates: Certificates) -> String? {
        if account.requiresTLS && !tls { return "the account requires TLS" }
        guard let required = account.certificate else { return nil }
        guard let client = certificates.client else {
            return "the account requires a client certificate (REQUIRE X509, SUBJECT or ISSUER) and "
                + (certificates.asked
                    ? "the client presented none"
                    : "the proxy does not ask clients for one (proxy.tls.client_ca_file is not set)")
        }
        if let mismatch = required.mismatch(client) { return "the client certificate's \(mismatch)" }
        // The server checks the certificate of the connection it sees: the proxy's.
        guard let proxy = certificates.proxy else {
            return "the account requires a certificate, and the proxy has none to show the server (tls.cert_file)"
        }
        if let mismatch = required.mismatch(proxy) {
            return "the server would refuse the proxy's certificate (tls.cert_file): its \(mismatch)"
        }
        return nil
    }

    /// Reads the names of the certificate the client presented (NIOSSL has verified it already).
    func noteClientCertificate(context: ChannelHandlerContext) {
        guard let handler = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self),
            let certificate = handler.peerCertificate
        else { return }
        do {
            clientCertificate = try CertificateNameReader.names(der: try certificate.toDERBytes())
        } catch {
            logger.notice("cannot read the client certificate's names: \(error)")
        }
    }
}
