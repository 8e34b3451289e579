import NIOCore
import Testing

@testable import TLSRecordLayer

/// The AEAD shim against published known answers (GCM spec test cases 1, 4 and 16, RFC 8439 §2.8.2,
/// RFC 8448 §3's first client record): sealing in place as the record layer does, opening into
/// separate memory, and a flipped bit anywhere (ciphertext, tag, additional data, nonce) failing to open.
@Suite struct AEADContextTests {
    struct Vector: CustomTestStringConvertible, Sendable {
        var name: String
        var suite: TLSCipherSuite
        var key: String
        var nonce: String
        var aad: String
        var plaintext: [UInt8]
        /// The ciphertext followed by the 16-byte tag.
        var sealed: String
        var testDescription: String { name }
    }

    static let gcmPlaintext = hex(
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5"
            + "aa0de657ba637b39")

    static let vectors: [Vector] = [
        Vector(
            name: "AES-128-GCM, empty plaintext and additional data (GCM test case 1)",
            suite: .tls13(0x1301)!, key: String(repeating: "00", count: 16), nonce: String(repeating: "00", count: 12),
            aad: "", plaintext: [], sealed: "58e2fccefa7e3061367f1d57a4e7455a"),
        Vector(
            name: "AES-128-GCM (GCM test case 4)", suite: .tls13(0x1301)!, key: "feffe9928665731c6d6a8f9467308308",
            nonce: "cafebabefacedbaddecaf888", aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2", plaintext: gcmPlaintext,
            sealed: "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa05"
                + "1ba30b396a0aac973d58e0915bc94fbc3221a5db94fae95ae7121a47"),
        Vector(
            name: "AES-256-GCM (GCM test case 16)", suite: .tls13(0x1302)!,
            key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
            nonce: "cafebabefacedbaddecaf888", aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2", plaintext: gcmPlaintext,
            sealed: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838"
                + "c5f61e6393ba7a0abcc9f66276fc6ece0f4e1768cddf8853bb2d551b"),
        Vector(
            name: "ChaCha20-Poly1305 (RFC 8439 §2.8.2)", suite: .tls13(0x1303)!,
            key: "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f", nonce: "070000004041424344454647",
            aad: "50515253c0c1c2c3c4c5c6c7",
            plaintext: Array(
                ("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, "
                    + "sunscreen would be it.").utf8),
            sealed: "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b"
                + "1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
                + "3ff4def08e4b7a9de576d26586cec64b61161ae10b594f09e26a7e902ecbd0600691"),
    ]

    @Test(
        "Sealing in place gives the published ciphertext and tag; opening gives the plaintext back", arguments: vectors)
    func knownAnswer(_ vector: Vector) throws {
        let sealer = try AEADContext(vector.suite, key: hex(vector.key), sealing: true)
        let opener = try AEADContext(vector.suite, key: hex(vector.key), sealing: false)
        let sealed = hex(vector.sealed)
        let length = vector.plaintext.count
        var buffer = vector.plaintext + [UInt8](repeating: 0, count: 16)
        #expect(Self.seal(sealer, vector, &buffer, length: length))
        #expect(buffer == sealed)
        var plaintext = [UInt8](repeating: 0xAA, count: max(length, 1))
        #expect(Self.open(opener, nonce: hex(vector.nonce), aad: hex(vector.aad), sealed, into: &plaintext))
        #expect(plaintext.prefix(length) == vector.plaintext[...])
    }

    @Test("A flipped bit in the ciphertext, tag, additional data or nonce fails to open", arguments: vectors)
    func tamper(_ vector: Vector) throws {
        let opener = try AEADContext(vector.suite, key: hex(vector.key), sealing: false)
        let sealed = hex(vector.sealed)
        let nonce = hex(vector.nonce)
        let aad = hex(vector.aad) + (vector.aad.isEmpty ? [0] : [])
        var output = [UInt8](repeating: 0, count: max(sealed.count, 1))
        #expect(Self.open(opener, nonce: nonce, aad: hex(vector.aad), sealed, into: &output))
        for index in [0, sealed.count / 2, sealed.count - 17, sealed.count - 16, sealed.count - 1] where index >= 0 {
            var forged = sealed
            forged[index] ^= 0x01
            #expect(!Self.open(opener, nonce: nonce, aad: hex(vector.aad), forged, into: &output))
        }
        var otherAAD = aad
        otherAAD[0] ^= 0x80
        #expect(!Self.open(opener, nonce: nonce, aad: otherAAD, sealed, into: &output))
        var otherNonce = nonce
        otherNonce[11] ^= 0x01
        #expect(!Self.open(opener, nonce: otherNonce, aad: hex(vector.aad), sealed, into: &output))
        // The context still opens the genuine bytes after the failures.
        #expect(Self.open(opener, nonce: nonce, aad: hex(vector.aad), sealed, into: &output))
    }

    @Test("A context made for one direction refuses the other; a key of the wrong length is refused")
    func directionAndKeyLength() throws {
        let vector = Self.vectors[1]
        let sealer = try AEADContext(vector.suite, key: hex(vector.key), sealing: true)
        let opener = try AEADContext(vector.suite, key: hex(vector.key), sealing: false)
        var buffer = vector.plaintext + [UInt8](repeating: 0, count: 16)
        #expect(!Self.seal(opener, vector, &buffer, length: vector.plaintext.count))
        var output = [UInt8](repeating: 0, count: vector.plaintext.count)
        #expect(
            !Self.open(
                sealer, nonce: hex(vector.nonce), aad: hex(vector.aad), hex(vector.sealed), into: &output
            ))
        #expect(throws: TLSRecordError.cryptoFailure) {
            _ = try AEADContext(.tls13(0x1301)!, key: [UInt8](repeating: 0, count: 32), sealing: true)
        }
        #expect(throws: TLSRecordError.cryptoFailure) {
            _ = try AEADContext(.tls13(0x1303)!, key: [UInt8](repeating: 0, count: 16), sealing: false)
        }
    }

    @Test("openApplicationData opens whole application-data records and leaves an alert or a partial record")
    func openHeldRecords() throws {
        let suite = TLSCipherSuite.tls13(0x1301)!
        let keys = TLSTrafficKeys(
            key: hex("17422dda596ed5d9acd890e3c63f5051"), iv: hex("5b78923dee08579033e523d9"), secret: [])
        var sealer = try TLSRecordProtection(version: .tls13, suite: suite, keys: keys, sequence: 0, sealing: true)
        var records = ByteBuffer()
        try sealer.seal(type: TLSContentType.applicationData, Array("OK".utf8), into: &records)
        try sealer.seal(type: TLSContentType.applicationData, Array(" then".utf8), into: &records)
        var alert = ByteBuffer()
        try sealer.seal(type: 21, [1, 0], into: &alert)  // close_notify
        records.writeImmutableBuffer(alert)
        var reader = try TLSRecordProtection(version: .tls13, suite: suite, keys: keys, sequence: 0, sealing: false)
        var input = records
        var plaintext = ByteBuffer()
        let stoppedBefore = TLSRecordHandler.openApplicationData(&input, reader: &reader, into: &plaintext)
        #expect(String(buffer: plaintext) == "OK then")
        #expect(stoppedBefore)
        #expect(input.readableBytes == alert.readableBytes, "the alert stays for whoever reads on")
        // A partial record waits.
        var partial = records.getSlice(at: 0, length: 10)!
        var fresh = try TLSRecordProtection(version: .tls13, suite: suite, keys: keys, sequence: 0, sealing: false)
        var none = ByteBuffer()
        #expect(!TLSRecordHandler.openApplicationData(&partial, reader: &fresh, into: &none))
        #expect(none.readableBytes == 0)
        #expect(partial.readableBytes == 10)
    }

    @Test("A TLS 1.3 record matches RFC 8448 §3 byte for byte, and opens back to its content and type")
    func rfc8448Record() throws {
        let suite = TLSCipherSuite.tls13(0x1301)!
        let keys = TLSTrafficKeys(
            key: hex("17422dda596ed5d9acd890e3c63f5051"), iv: hex("5b78923dee08579033e523d9"), secret: [])
        var sealer = try TLSRecordProtection(version: .tls13, suite: suite, keys: keys, sequence: 0, sealing: true)
        var record = ByteBuffer()
        try sealer.seal(type: TLSContentType.applicationData, Array(0..<50), into: &record)
        #expect(
            Array(record.readableBytesView)
                == hex(
                    "1703030043a23f7054b62c94d0affafe8228ba55cbefacea42f914aa66bcab3f2b9819a8a5b46b395bd54a9a20441e2b"
                        + "62974e1f5a6292a2977014bd1e3deae63aeebb21694915e4"))
        var opener = try TLSRecordProtection(version: .tls13, suite: suite, keys: keys, sequence: 0, sealing: false)
        var plaintext = ByteBuffer()
        let body = Array(record.readableBytesView.dropFirst(5))
        let type = try body.withUnsafeBytes { try opener.open(outerType: 23, body: $0, into: &plaintext) }
        #expect(type == TLSContentType.applicationData)
        #expect(Array(plaintext.readableBytesView) == Array(0..<50))
    }

    private static func seal(_ context: AEADContext, _ vector: Vector, _ buffer: inout [UInt8], length: Int) -> Bool {
        let nonce = hex(vector.nonce)
        let aad = hex(vector.aad)
        return nonce.withUnsafeBufferPointer { nonce in
            withAAD(aad) { aad in
                buffer.withUnsafeMutableBytes { bytes in
                    context.seal(
                        nonce: nonce.baseAddress!, aad: aad, input: bytes.baseAddress!, output: bytes.baseAddress!,
                        length: length, tag: bytes.baseAddress! + length)
                }
            }
        }
    }

    private static func open(
        _ context: AEADContext, nonce: [UInt8], aad: [UInt8], _ sealed: [UInt8], into output: inout [UInt8]
    ) -> Bool {
        let length = sealed.count - 16
        return nonce.withUnsafeBufferPointer { nonce in
            withAAD(aad) { aad in
                sealed.withUnsafeBytes { input in
                    output.withUnsafeMutableBytes { output in
                        context.open(
                            nonce: nonce.baseAddress!, aad: aad, input: input.baseAddress!,
                            output: output.baseAddress!, length: length, tag: input.baseAddress! + length)
                    }
                }
            }
        }
    }

    /// The additional data with a non-nil base address even when empty, as the record layer always has.
    private static func withAAD<R>(_ aad: [UInt8], _ body: (UnsafeRawBufferPointer) -> R) -> R {
        (aad + [0]).withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[0..<aad.count])) }
    }
}
