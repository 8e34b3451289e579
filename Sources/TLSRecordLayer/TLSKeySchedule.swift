import Crypto
import Foundation

/// The TLS versions the fast path protects records for.
public enum TLSRecordVersion: Sendable, Equatable, CustomStringConvertible {
    case tls12
    case tls13

    public var description: String {
        switch self {
        case .tls12: "TLSv1.2"
        case .tls13: "TLSv1.3"
        }
    }
}

/// The AEAD cipher suites the fast path supports (every suite a modern peer negotiates); any other
/// suite keeps the session on NIOSSL.
public struct TLSCipherSuite: Sendable, Equatable {
    public enum Algorithm: Sendable, Equatable {
        case aes128GCM
        case aes256GCM
        case chacha20Poly1305
    }

    public var id: UInt16
    public var algorithm: Algorithm
    /// The suite's hash: SHA-384 for the AES-256 suites, SHA-256 otherwise (the PRF in TLS 1.2, HKDF in 1.3).
    public var usesSHA384: Bool

    public var keyLength: Int { algorithm == .aes128GCM ? 16 : 32 }

    public static func tls12(_ id: UInt16) -> TLSCipherSuite? {
        switch id {
        // ECDHE-ECDSA, ECDHE-RSA, RSA and DHE-RSA with AES-128-GCM.
        case 0xC02B, 0xC02F, 0x009C, 0x009E: TLSCipherSuite(id: id, algorithm: .aes128GCM, usesSHA384: false)
        case 0xC02C, 0xC030, 0x009D, 0x009F: TLSCipherSuite(id: id, algorithm: .aes256GCM, usesSHA384: true)
        case 0xCCA8, 0xCCA9, 0xCCAA: TLSCipherSuite(id: id, algorithm: .chacha20Poly1305, usesSHA384: false)
        default: nil
        }
    }

    public static func tls13(_ id: UInt16) -> TLSCipherSuite? {
        switch id {
        case 0x1301: TLSCipherSuite(id: id, algorithm: .aes128GCM, usesSHA384: false)
        case 0x1302: TLSCipherSuite(id: id, algorithm: .aes256GCM, usesSHA384: true)
        case 0x1303: TLSCipherSuite(id: id, algorithm: .chacha20Poly1305, usesSHA384: false)
        default: nil
        }
    }
}

/// One direction's record keys.
public struct TLSTrafficKeys: Sendable, Equatable {
    public var key: [UInt8]
    /// 12 bytes, except TLS 1.2 AES-GCM's 4-byte implicit part (the other 8 travel in each record).
    public var iv: [UInt8]
    /// TLS 1.3's traffic secret, kept for KeyUpdate; empty for TLS 1.2.
    public var secret: [UInt8]
}

/// Key derivation from the secrets BoringSSL logs at the end of a handshake (RFC 5246 §6.3, RFC 8446 §7).
public enum TLSKeySchedule {
    /// TLS 1.3: a traffic secret's write key and IV.
    public static func tls13Keys(secret: [UInt8], suite: TLSCipherSuite) -> TLSTrafficKeys {
        TLSTrafficKeys(
            key: expandLabel(secret: secret, label: "key", length: suite.keyLength, sha384: suite.usesSHA384),
            iv: expandLabel(secret: secret, label: "iv", length: 12, sha384: suite.usesSHA384),
            secret: secret)
    }

    /// TLS 1.3 KeyUpdate: the next traffic secret's keys.
    public static func tls13NextKeys(after keys: TLSTrafficKeys, suite: TLSCipherSuite) -> TLSTrafficKeys {
        let next = expandLabel(
            secret: keys.secret, label: "traffic upd", length: keys.secret.count, sha384: suite.usesSHA384)
        return tls13Keys(secret: next, suite: suite)
    }

    /// TLS 1.2: both directions' keys from the master secret (AEAD suites have no MAC keys).
    public static func tls12Keys(
        masterSecret: [UInt8], clientRandom: [UInt8], serverRandom: [UInt8], suite: TLSCipherSuite
    ) -> (client: TLSTrafficKeys, server: TLSTrafficKeys) {
        let ivLength = suite.algorithm == .chacha20Poly1305 ? 12 : 4
        let block = prf(
            secret: masterSecret, label: "key expansion", seed: serverRandom + clientRandom,
            length: 2 * suite.keyLength + 2 * ivLength, sha384: suite.usesSHA384)
        let keyLength = suite.keyLength
        let clientKey = Array(block[0..<keyLength])
        let serverKey = Array(block[keyLength..<2 * keyLength])
        let clientIV = Array(block[2 * keyLength..<2 * keyLength + ivLength])
        let serverIV = Array(block[2 * keyLength + ivLength..<2 * keyLength + 2 * ivLength])
        return (
            TLSTrafficKeys(key: clientKey, iv: clientIV, secret: []),
            TLSTrafficKeys(key: serverKey, iv: serverIV, secret: [])
        )
    }

    /// HKDF-Expand-Label (RFC 8446 §7.1) with an empty context.
    public static func expandLabel(secret: [UInt8], label: String, length: Int, sha384: Bool) -> [UInt8] {
        let fullLabel = Array("tls13 \(label)".utf8)
        var info: [UInt8] = [UInt8(length >> 8), UInt8(length & 0xFF), UInt8(fullLabel.count)]
        info += fullLabel
        info.append(0)  // empty context
        let key = SymmetricKey(data: secret)
        let output =
            sha384
            ? HKDF<SHA384>.expand(pseudoRandomKey: key, info: info, outputByteCount: length)
            : HKDF<SHA256>.expand(pseudoRandomKey: key, info: info, outputByteCount: length)
        return output.withUnsafeBytes { Array($0) }
    }

    /// The TLS 1.2 PRF (RFC 5246 §5): P_hash(secret, label + seed).
    public static func prf(secret: [UInt8], label: String, seed: [UInt8], length: Int, sha384: Bool) -> [UInt8] {
        sha384
            ? pHash(SHA384.self, secret: secret, seed: Array(label.utf8) + seed, length: length)
            : pHash(SHA256.self, secret: secret, seed: Array(label.utf8) + seed, length: length)
    }

    private static func pHash<H: HashFunction>(_: H.Type, secret: [UInt8], seed: [UInt8], length: Int) -> [UInt8] {
        let key = SymmetricKey(data: secret)
        var a = Array(HMAC<H>.authenticationCode(for: seed, using: key))
        var output: [UInt8] = []
        while output.count < length {
            output += Array(HMAC<H>.authenticationCode(for: a + seed, using: key))
            a = Array(HMAC<H>.authenticationCode(for: a, using: key))
        }
        return Array(output.prefix(length))
    }
}
