/// What the proxy knows about an account's secret, as the server stores it (never the plaintext).
public enum StoredCredential: Hashable, Sendable {
    /// `mysql_native_password`: SHA1(SHA1(password)), the 20 bytes behind `*<40 hex>` in `mysql.global_priv`.
    case nativePassword(doubleSHA1: [UInt8])
    /// An account without a password.
    case empty
    /// MariaDB `ed25519`: the account's Ed25519 public key (32 bytes).
    case ed25519(publicKey: [UInt8])
}

/// An authentication plugin the proxy can verify clients with. One type per plugin; the session state
/// machine never switches on plugin-name strings.
public protocol AuthMethod: Sendable {
    /// The plugin name on the wire, e.g. `mysql_native_password`.
    var name: String { get }
    /// Checks a client's response to `scramble` against what the server stores for the account.
    func verify(response: [UInt8], scramble: [UInt8], credential: StoredCredential) -> Bool
}

/// Compares in time independent of where the first difference is.
func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for index in a.indices { difference |= a[index] ^ b[index] }
    return difference == 0
}
