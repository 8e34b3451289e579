import Crypto

/// `mysql_native_password`: the client sends SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password))).
///
/// The server stores only SHA1(SHA1(password)). Verifying recovers SHA1(password) from the response,
/// which is also exactly what the proxy needs to answer a backend's different scramble for the same
/// user: it logs in to backends as the client without ever holding the plaintext password.
public struct MySQLNativePassword: AuthMethod {
    public init() {}

    public var name: String { "mysql_native_password" }

    static func sha1(_ bytes: [UInt8]) -> [UInt8] { Array(Insecure.SHA1.hash(data: bytes)) }

    /// The client side: the response to `scramble` for `password` (empty password → empty response).
    public static func response(password: String, scramble: [UInt8]) -> [UInt8] {
        guard !password.isEmpty else { return [] }
        return response(passwordSHA1: sha1(Array(password.utf8)), scramble: scramble)
    }

    /// The response to `scramble` from SHA1(password) alone (how the proxy answers a backend).
    public static func response(passwordSHA1: [UInt8], scramble: [UInt8]) -> [UInt8] {
        let mask = sha1(Array(scramble.prefix(20)) + sha1(passwordSHA1))
        return zip(passwordSHA1, mask).map { $0 ^ $1 }
    }

    /// SHA1(SHA1(password)): what the server stores.
    public static func doubleSHA1(password: String) -> [UInt8] { sha1(sha1(Array(password.utf8))) }

    /// `*2470C0C0...`: the `authentication_string` the server stores for `password` (`PASSWORD('...')`).
    public static func authenticationString(password: String) -> String {
        "*"
            + doubleSHA1(password: password).map { ($0 < 16 ? "0" : "") + String($0, radix: 16, uppercase: true) }
            .joined()
    }

    /// Parses `*2470C0C0...` (the `authentication_string` form) into the stored credential.
    public static func storedCredential(fromAuthenticationString text: String) -> StoredCredential? {
        if text.isEmpty { return .empty }
        guard text.count == 41, text.first == "*" else { return nil }
        var bytes: [UInt8] = []
        var index = text.index(after: text.startIndex)
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            guard let byte = UInt8(text[index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        return .nativePassword(doubleSHA1: bytes)
    }

    /// SHA1(password) recovered from a client's response, when the response is valid for the credential.
    public static func recoverPasswordSHA1(response: [UInt8], scramble: [UInt8], doubleSHA1: [UInt8]) -> [UInt8]? {
        guard response.count == 20, doubleSHA1.count == 20 else { return nil }
        let mask = sha1(Array(scramble.prefix(20)) + doubleSHA1)
        let candidate = zip(response, mask).map { $0 ^ $1 }
        return constantTimeEqual(sha1(candidate), doubleSHA1) ? candidate : nil
    }

    public func verify(response: [UInt8], scramble: [UInt8], credential: StoredCredential) -> Bool {
        switch credential {
        case .empty:
            return response.isEmpty
        case .nativePassword(let doubleSHA1):
            return Self.recoverPasswordSHA1(response: response, scramble: scramble, doubleSHA1: doubleSHA1) != nil
        case .ed25519:
            return false
        }
    }
}
