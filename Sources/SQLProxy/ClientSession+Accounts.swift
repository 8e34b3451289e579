import MySQLWire
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

    /// Why `account` may not log in on a session (over TLS or not) whatever the password: the server's rules
    /// that the proxy applies itself. Nil when it may.
    static func loginRefusal(_ account: Account, tls: Bool) -> String? {
        if account.requiresCertificate {
            return "the account requires a client certificate (REQUIRE X509, SUBJECT or ISSUER), "
                + "which the proxy does not accept"
        }
        return account.requiresTLS && !tls ? "the account requires TLS" : nil
    }
}
