import Crypto

/// MariaDB's `ed25519` authentication (client plugin `client_ed25519`): the server sends 32 random
/// bytes, the client signs them with an Ed25519 key derived from the password, and the server checks
/// the 64-byte signature against the public key it stores (`authentication_string`: the key in
/// base64 without padding, 43 characters). The proxy can verify a client this way, but cannot sign for
/// it: logging in to a server as an ed25519 user needs the server's own challenge answered by the client.
public struct MariaDBEd25519: AuthMethod {
    public let name = "client_ed25519"
    /// The server-side plugin name in `mysql.user`.
    public static let serverPluginName = "ed25519"

    public init() {}

    public static func storedCredential(fromAuthenticationString text: String) -> StoredCredential? {
        guard let key = base64Decode(text), key.count == 32 else { return nil }
        return .ed25519(publicKey: key)
    }

    public func verify(response: [UInt8], scramble: [UInt8], credential: StoredCredential) -> Bool {
        guard case .ed25519(let publicKey) = credential, response.count == 64,
            let key = try? Curve25519.Signing.PublicKey(rawRepresentation: publicKey)
        else { return false }
        return key.isValidSignature(response, for: scramble)
    }

    /// Standard base64, with or without `=` padding.
    static func base64Decode(_ text: String) -> [UInt8]? {
        var bits: UInt32 = 0
        var count = 0
        var out: [UInt8] = []
        for character in text.utf8 {
            let value: UInt32
            switch character {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = UInt32(character - UInt8(ascii: "A"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = UInt32(character - UInt8(ascii: "a")) + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = UInt32(character - UInt8(ascii: "0")) + 52
            case UInt8(ascii: "+"): value = 62
            case UInt8(ascii: "/"): value = 63
            case UInt8(ascii: "="): continue
            default: return nil
            }
            bits = bits << 6 | value
            count += 6
            if count >= 8 {
                count -= 8
                out.append(UInt8(truncatingIfNeeded: bits >> UInt32(count)))
            }
        }
        return out
    }
}
