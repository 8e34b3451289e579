import CTLSRecordCrypto
public import NIOCore

/// Why a record could not be opened or sealed. Every case ends the connection with the matching alert.
public enum TLSRecordError: Error, Equatable, CustomStringConvertible {
    /// A record failed authentication: corrupted, forged, or protected with other keys.
    case badRecordMAC
    case recordOverflow(Int)
    case unexpectedMessage(String)
    /// The peer sent a fatal alert (its description code).
    case alertReceived(UInt8)
    case cryptoFailure

    public var description: String {
        switch self {
        case .badRecordMAC: "a TLS record failed authentication (bad_record_mac)"
        case .recordOverflow(let length): "a TLS record of \(length) bytes is larger than TLS allows"
        case .unexpectedMessage(let what): "unexpected TLS message: \(what)"
        case .alertReceived(let code): "the peer sent TLS alert \(code)"
        case .cryptoFailure: "the AEAD cipher failed"
        }
    }

    /// The alert sent before closing.
    var alert: UInt8 {
        switch self {
        case .badRecordMAC: 20
        case .recordOverflow: 22
        case .unexpectedMessage: 10
        case .alertReceived, .cryptoFailure: 80  // internal_error
        }
    }
}

/// TLS record content types.
public enum TLSContentType {
    public static let changeCipherSpec: UInt8 = 20
    public static let alert: UInt8 = 21
    public static let handshake: UInt8 = 22
    public static let applicationData: UInt8 = 23
}

/// A BoringSSL AEAD context (through the CTLSRecordCrypto shim) for one key and direction.
final class AEADContext {
    private let aead: OpaquePointer

    init(_ suite: TLSCipherSuite, key: [UInt8], sealing: Bool) throws(TLSRecordError) {
        let algorithm: sy_aead_algorithm =
            switch suite.algorithm {
            case .aes128GCM: SY_AEAD_AES_128_GCM
            case .aes256GCM: SY_AEAD_AES_256_GCM
            case .chacha20Poly1305: SY_AEAD_CHACHA20_POLY1305
            }
        guard
            let aead = key.withUnsafeBufferPointer({ sy_aead_new(algorithm, $0.baseAddress, $0.count, sealing ? 1 : 0) }
            )
        else { throw .cryptoFailure }
        self.aead = aead
    }

    deinit { sy_aead_free(aead) }

    func seal(
        nonce: UnsafePointer<UInt8>, aad: UnsafeRawBufferPointer, input: UnsafeRawPointer,
        output: UnsafeMutableRawPointer, length: Int, tag: UnsafeMutableRawPointer
    ) -> Bool {
        sy_aead_seal(
            aead, nonce, aad.baseAddress!.assumingMemoryBound(to: UInt8.self), aad.count,
            input.assumingMemoryBound(to: UInt8.self), output.assumingMemoryBound(to: UInt8.self), length,
            tag.assumingMemoryBound(to: UInt8.self)) == 1
    }

    func open(
        nonce: UnsafePointer<UInt8>, aad: UnsafeRawBufferPointer, input: UnsafeRawPointer,
        output: UnsafeMutableRawPointer, length: Int, tag: UnsafeRawPointer
    ) -> Bool {
        sy_aead_open(
            aead, nonce, aad.baseAddress!.assumingMemoryBound(to: UInt8.self), aad.count,
            input.assumingMemoryBound(to: UInt8.self), output.assumingMemoryBound(to: UInt8.self), length,
            tag.assumingMemoryBound(to: UInt8.self)) == 1
    }
}

/// One direction of a TLS connection's record protection after the handshake: seals (or opens) records
/// with the negotiated AEAD, counting sequence numbers (RFC 5246 §6.2.3.3, RFC 7905, RFC 8446 §5.2–5.3).
public struct TLSRecordProtection {
    public static let maxPlaintext = 1 << 14
    static let tagLength = 16

    public let version: TLSRecordVersion
    public let suite: TLSCipherSuite
    public internal(set) var sequence: UInt64
    private(set) var keys: TLSTrafficKeys
    private var context: AEADContext
    private let sealing: Bool
    /// The IV as the high 4 and low 8 bytes of the 12-byte nonce base (TLS 1.2 AES-GCM: salt only).
    private var ivHigh: UInt32
    private var ivLow: UInt64

    public init(
        version: TLSRecordVersion, suite: TLSCipherSuite, keys: TLSTrafficKeys, sequence: UInt64, sealing: Bool
    ) throws(TLSRecordError) {
        self.version = version
        self.suite = suite
        self.keys = keys
        self.sequence = sequence
        self.sealing = sealing
        self.context = try AEADContext(suite, key: keys.key, sealing: sealing)
        (ivHigh, ivLow) = Self.split(keys.iv)
    }

    private static func split(_ iv: [UInt8]) -> (UInt32, UInt64) {
        let high = iv.prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        let low = iv.dropFirst(4).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return (high, low)
    }

    /// TLS 1.2 AES-GCM carries an 8-byte explicit nonce in front of each record's ciphertext.
    var explicitNonceLength: Int { version == .tls12 && suite.algorithm != .chacha20Poly1305 ? 8 : 0 }

    /// Bytes a record adds around its content.
    public var overhead: Int { 5 + explicitNonceLength + Self.tagLength + (version == .tls13 ? 1 : 0) }

    /// The largest record body a peer may send (RFC 8446 §5.2; RFC 5246 §6.2.3).
    public var maxCiphertext: Int { version == .tls13 ? Self.maxPlaintext + 256 : Self.maxPlaintext + 2048 }

    /// Takes back the last `open`, whose record another reader will open again (after it handed that reader
    /// its state).
    public mutating func unopenLast() { sequence &-= 1 }

    /// TLS 1.3 KeyUpdate: moves to the next traffic secret, sequence numbers starting over.
    public mutating func updateKeys() throws(TLSRecordError) {
        keys = TLSKeySchedule.tls13NextKeys(after: keys, suite: suite)
        context = try AEADContext(suite, key: keys.key, sealing: sealing)
        (ivHigh, ivLow) = Self.split(keys.iv)
        sequence = 0
    }

    /// A record's nonce and additional data, as plain values: worked out before the AEAD call's closures so
    /// that they do not capture (and copy) the whole struct.
    struct RecordInputs {
        /// The IV's high 4 bytes, then its low 8 XORed with the sequence number (or the explicit nonce).
        var nonce: (UInt32, UInt32, UInt32)
        /// TLS 1.2: sequence, type, version, plaintext length (13 bytes); TLS 1.3: the record header (5).
        var aad: (UInt64, UInt64) = (0, 0)
        var aadLength = 0

        func withPointers<R>(_ body: (UnsafePointer<UInt8>, UnsafeRawBufferPointer) -> R) -> R {
            withUnsafeBytes(of: nonce) { nonce in
                withUnsafeBytes(of: aad) { aad in
                    body(
                        nonce.baseAddress!.assumingMemoryBound(to: UInt8.self),
                        UnsafeRawBufferPointer(rebasing: aad[0..<aadLength]))
                }
            }
        }
    }

    /// `explicit`: TLS 1.2 AES-GCM's explicit nonce (the sequence number when sealing).
    private func recordInputs(type: UInt8, length: Int, explicit: UInt64) -> RecordInputs {
        let low = explicitNonceLength > 0 ? explicit : ivLow ^ sequence
        var inputs = RecordInputs(
            nonce: (
                ivHigh.bigEndian, UInt32(truncatingIfNeeded: low >> 32).bigEndian,
                UInt32(truncatingIfNeeded: low).bigEndian
            ))
        withUnsafeMutableBytes(of: &inputs.aad) { aad in
            var index = 0
            if version == .tls12 {
                aad.storeBytes(of: sequence.bigEndian, as: UInt64.self)
                index = 8
            }
            aad[index] = type
            aad[index + 1] = 3
            aad[index + 2] = 3
            aad[index + 3] = UInt8(truncatingIfNeeded: length >> 8)
            aad[index + 4] = UInt8(truncatingIfNeeded: length)
            inputs.aadLength = index + 5
        }
        return inputs
    }

    /// Appends one record holding `plaintext` (at most `maxPlaintext` bytes) of `type` to `out`.
    public mutating func seal(type: UInt8, _ plaintext: UnsafeRawBufferPointer, into out: inout ByteBuffer)
        throws(TLSRecordError)
    {
        precondition(sealing && plaintext.count <= Self.maxPlaintext)
        let innerLength = plaintext.count + (version == .tls13 ? 1 : 0)
        let bodyLength = explicitNonceLength + innerLength + Self.tagLength
        let outerType = version == .tls13 ? TLSContentType.applicationData : type
        out.writeMultipleIntegers(outerType, UInt16(0x0303), UInt16(bodyLength))
        let explicitLength = explicitNonceLength
        let sequence = self.sequence
        let tls13 = version == .tls13
        // TLS 1.3 authenticates the record header; TLS 1.2 the plaintext's type and length.
        let inputs = recordInputs(type: outerType, length: tls13 ? bodyLength : innerLength, explicit: sequence)
        let context = self.context
        let ok = out.writeWithUnsafeMutableBytes(minimumWritableBytes: bodyLength) { body -> Int in
            var nonceBytes = sequence.bigEndian
            withUnsafeBytes(of: &nonceBytes) {
                body.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: explicitLength)
            }
            let inner = body.baseAddress! + explicitLength
            if plaintext.count > 0 { inner.copyMemory(from: plaintext.baseAddress!, byteCount: plaintext.count) }
            if tls13 { inner.storeBytes(of: type, toByteOffset: plaintext.count, as: UInt8.self) }
            let sealed = inputs.withPointers { nonce, aad in
                context.seal(
                    nonce: nonce, aad: aad, input: inner, output: inner, length: innerLength, tag: inner + innerLength)
            }
            return sealed ? bodyLength : 0
        }
        guard ok == bodyLength else { throw .cryptoFailure }
        self.sequence &+= 1
    }

    /// `seal` for a small control message (alert, KeyUpdate).
    public mutating func seal(type: UInt8, _ message: [UInt8], into out: inout ByteBuffer) throws(TLSRecordError) {
        var failure: TLSRecordError?
        message.withUnsafeBytes { bytes in
            do throws(TLSRecordError) { try seal(type: type, bytes, into: &out) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Opens one record (`body` is everything after the 5-byte header), appending its plaintext to `out`;
    /// returns the content type.
    public mutating func open(outerType: UInt8, body: UnsafeRawBufferPointer, into out: inout ByteBuffer)
        throws(TLSRecordError) -> UInt8
    {
        precondition(!sealing)
        guard body.count <= maxCiphertext else { throw .recordOverflow(body.count) }
        let innerLength = body.count - explicitNonceLength - Self.tagLength
        guard innerLength >= (version == .tls13 ? 1 : 0) else { throw .badRecordMAC }
        if version == .tls13 && outerType != TLSContentType.applicationData {
            throw .unexpectedMessage("a record of type \(outerType) after the handshake")
        }
        var explicit: UInt64 = 0
        for index in 0..<explicitNonceLength { explicit = explicit << 8 | UInt64(body[index]) }
        let start = out.writerIndex
        let explicitLength = explicitNonceLength
        let inputs = recordInputs(
            type: outerType, length: version == .tls13 ? body.count : innerLength, explicit: explicit)
        let context = self.context
        var verified = false
        out.writeWithUnsafeMutableBytes(minimumWritableBytes: max(innerLength, 1)) { output -> Int in
            let input = body.baseAddress! + explicitLength
            verified = inputs.withPointers { nonce, aad in
                context.open(
                    nonce: nonce, aad: aad, input: input, output: output.baseAddress!, length: innerLength,
                    tag: input + innerLength)
            }
            return verified ? innerLength : 0
        }
        guard verified else { throw .badRecordMAC }
        sequence &+= 1
        guard version == .tls13 else { return outerType }
        // TLSInnerPlaintext: content, the real type, then zero padding.
        var end = out.writerIndex
        while end > start, out.getInteger(at: end - 1, as: UInt8.self) == 0 { end -= 1 }
        guard end > start, let type = out.getInteger(at: end - 1, as: UInt8.self) else {
            throw .unexpectedMessage("a record with no content type")
        }
        out.moveWriterIndex(to: end - 1)
        return type
    }
}
