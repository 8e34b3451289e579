import NIOCore
import NIOEmbedded
import TestSupport
import Testing

@testable import TLSRecordLayer

/// Peer bytes against the fast path's record handler directly, with keys both sides know: forged,
/// truncated and oversized records end the connection with a TLS error and never crash it, nothing
/// forged reaches the application, and TLS 1.3 KeyUpdate is followed and answered.
@Suite struct TLSRecordInputTests {
    static let suite13 = TLSCipherSuite.tls13(0x1301)!
    static let clientKeys = TLSKeySchedule.tls13Keys(secret: Array(repeating: 7, count: 32), suite: suite13)
    static let serverKeys = TLSKeySchedule.tls13Keys(secret: Array(repeating: 9, count: 32), suite: suite13)

    /// A server-side handler reading what the "client" protections seal.
    private func serverChannel() throws -> (EmbeddedChannel, Collector) {
        let handler = TLSRecordHandler(
            reader: try TLSRecordProtection(
                version: .tls13, suite: Self.suite13, keys: Self.clientKeys, sequence: 0, sealing: false),
            writer: try TLSRecordProtection(
                version: .tls13, suite: Self.suite13, keys: Self.serverKeys, sequence: 0, sealing: true),
            leftover: ByteBuffer())
        let collector = Collector()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers([handler, collector])
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (channel, collector)
    }

    private func sealer() throws -> TLSRecordProtection {
        try TLSRecordProtection(version: .tls13, suite: Self.suite13, keys: Self.clientKeys, sequence: 0, sealing: true)
    }

    @Test("Seeded streams of valid, forged, truncated and oversized records never crash and never deliver forged bytes")
    func randomStreams() throws {
        for seed in 0..<300 {
            var random = SplitMix64(state: UInt64(seed))
            let (channel, app) = try serverChannel()
            var sealer = try sealer()
            var wire = ByteBuffer()
            var genuine: [UInt8] = []  // what arrives before the first bad record
            var spoiled = false
            for _ in 0..<Int.random(in: 1...12, using: &random) {
                switch Int.random(in: 0..<10, using: &random) {
                case 0..<6:
                    let content = (0..<Int.random(in: 0...3000, using: &random)).map { _ in
                        UInt8.random(in: 0...255, using: &random)
                    }
                    try content.withUnsafeBytes { try sealer.seal(type: 23, $0, into: &wire) }
                    if !spoiled { genuine += content }
                case 6:  // a valid header with a random body
                    let length = Int.random(in: 0...400, using: &random)
                    wire.writeMultipleIntegers(UInt8(23), UInt16(0x0303), UInt16(length))
                    wire.writeBytes((0..<length).map { _ in UInt8.random(in: 0...255, using: &random) })
                    spoiled = true
                case 7:  // a length no TLS record may have
                    wire.writeMultipleIntegers(
                        UInt8(23), UInt16(0x0303), UInt16.random(in: 16_641...65_535, using: &random))
                    spoiled = true
                case 8:  // a record of another type
                    wire.writeMultipleIntegers(UInt8.random(in: 0...255, using: &random), UInt16(0x0303), UInt16(20))
                    wire.writeBytes(Array(repeating: 0, count: 20))
                    spoiled = true
                default:  // a genuine record with one bit flipped
                    var record = ByteBuffer()
                    try sealer.seal(type: 23, [1, 2, 3] as [UInt8], into: &record)
                    let index = Int.random(in: 0..<record.readableBytes, using: &random)
                    record.setInteger(record.getInteger(at: index, as: UInt8.self)! ^ 0x10, at: index)
                    wire.writeBuffer(&record)
                    spoiled = true
                }
            }
            // Delivered in random pieces; a closed channel refuses more, which is fine.
            while wire.readableBytes > 0, channel.isActive {
                let piece = wire.readSlice(length: min(wire.readableBytes, Int.random(in: 1...5000, using: &random)))!
                _ = try? channel.writeInbound(piece)
            }
            let delivered = app.received
            #expect(delivered == Array(genuine.prefix(delivered.count)), "seed \(seed): forged bytes delivered")
            if spoiled {
                #expect(!channel.isActive, "seed \(seed): a bad record did not end the connection")
                #expect(app.errors.allSatisfy { $0 is TLSRecordError }, "seed \(seed): \(app.errors)")
            } else {
                #expect(delivered == genuine, "seed \(seed): genuine bytes lost")
                #expect(channel.isActive && app.errors.isEmpty)
            }
            _ = try? channel.finish()
        }
    }

    @Test("TLS 1.3 KeyUpdate: the handler follows the peer's new key and answers an update_requested with its own")
    func keyUpdate() throws {
        let (channel, app) = try serverChannel()
        var sealer = try sealer()
        var wire = ByteBuffer()
        try sealer.seal(type: 23, [1, 2], into: &wire)
        try sealer.seal(type: 22, [24, 0, 0, 1, 1], into: &wire)  // KeyUpdate(update_requested)
        try sealer.updateKeys()
        try sealer.seal(type: 23, [3, 4], into: &wire)
        try channel.writeInbound(wire)
        #expect(app.received == [1, 2, 3, 4])
        #expect(app.errors.isEmpty)

        // The answer is a KeyUpdate under the old server key; what follows uses the next one.
        channel.writeAndFlush(ByteBuffer(bytes: [5, 6]), promise: nil)
        var opener = try TLSRecordProtection(
            version: .tls13, suite: Self.suite13, keys: Self.serverKeys, sequence: 0, sealing: false)
        var out = try #require(try channel.readOutbound(as: ByteBuffer.self))
        var plaintext = ByteBuffer()
        let type = try out.withUnsafeReadableBytes {
            try opener.open(outerType: 23, body: UnsafeRawBufferPointer(rebasing: $0[5...]), into: &plaintext)
        }
        #expect(type == 22 && Array(plaintext.readableBytesView) == [24, 0, 0, 1, 0])
        try opener.updateKeys()
        out = try #require(try channel.readOutbound(as: ByteBuffer.self))
        plaintext.clear()
        let dataType = try out.withUnsafeReadableBytes {
            try opener.open(outerType: 23, body: UnsafeRawBufferPointer(rebasing: $0[5...]), into: &plaintext)
        }
        #expect(dataType == 23 && Array(plaintext.readableBytesView) == [5, 6])
    }

    @Test("Key derivation matches RFC 8448's simple 1-RTT handshake (client application traffic key and IV)")
    func rfc8448Vectors() {
        // RFC 8448 §3: client_application_traffic_secret_0 and the key/iv derived from it.
        let secret = hex("9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5")
        let keys = TLSKeySchedule.tls13Keys(secret: secret, suite: Self.suite13)
        #expect(keys.key == hex("17422dda596ed5d9acd890e3c63f5051"))
        #expect(keys.iv == hex("5b78923dee08579033e523d9"))
    }
}
