import MySQLWire
import NIOCore
import TestSupport
import Testing

/// Peer bytes never trap: random and mutated inputs through every decoder and the handshake machine.
/// (Seeded, so a failure reproduces; the libFuzzer target is still to come.)
@Suite("Random input")
struct RandomInputTests {
    static func randomBytes(_ generator: inout SplitMix64, max: Int = 300) -> [UInt8] {
        (0..<Int.random(in: 0...max, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    @Test("the framing decoder either yields packets or throws a MySQLWireError on random streams")
    func framing() {
        var generator = SplitMix64(state: 1)
        for _ in 0..<3000 {
            var decoder = MySQLPacketDecoder(maxPayloadSize: 1 << 16)
            var buffer = ByteBuffer(bytes: Self.randomBytes(&generator))
            do {
                while try decoder.decode(buffer: &buffer) != nil {}
                _ = try decoder.decodeLast(buffer: &buffer, seenEOF: true)
            } catch {
                #expect(error is MySQLWireError)
            }
        }
    }

    @Test("packet decoders reject random and truncated payloads with their own errors")
    func packetDecoders() {
        var generator = SplitMix64(state: 2)
        var greeting = ByteBuffer()
        Packets.HandshakeV10(
            serverVersion: "10.11", connectionID: 1, scramble: Array(1...20),
            capabilities: [.protocol41, .secureConnection, .pluginAuth, .ssl], collation: 8, status: [],
            authPluginName: "mysql_native_password"
        ).encode(into: &greeting)
        let valid = Array(greeting.readableBytesView)
        for round in 0..<3000 {
            var bytes = round % 2 == 0 ? Self.randomBytes(&generator) : valid
            if round % 2 == 1, !bytes.isEmpty {  // mutate a few bytes of a valid greeting
                for _ in 0..<3 { bytes[Int.random(in: 0..<bytes.count, using: &generator)] ^= 0xFF }
                bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &generator)))
            }
            let payload = ByteBuffer(bytes: bytes)
            _ = try? Packets.HandshakeV10.decode(payload)
            _ = try? Packets.HandshakeResponse41.decode(
                payload,
                serverCapabilities: [
                    .protocol41, .pluginAuth, .connectAttributes, .connectWithDB, .secureConnection,
                    .pluginAuthLengthEncodedClientData,
                ])
            _ = try? Packets.OKPacket.decode(payload, capabilities: [.protocol41, .sessionTrack])
            _ = try? Packets.ErrorPacket.decode(payload, capabilities: [.protocol41])
            _ = try? Packets.EOFPacket.decode(payload, capabilities: [.protocol41])
            _ = Packets.AuthSwitchRequest.decode(payload)
            _ = Packets.HandshakeResponse41.isSSLRequest(payload)
        }
    }

    @Test("the server handshake machine answers random packets with ERR and close")
    func handshakeMachine() {
        var generator = SplitMix64(state: 3)
        for _ in 0..<2000 {
            var machine = ServerHandshakeStateMachine(
                settings: .init(
                    serverVersion: "x", connectionID: 1, scramble: Array(1...20), capabilities: [.protocol41, .ssl],
                    clientHost: "127.0.0.1"))
            _ = machine.start()
            let packet = MySQLPacket(
                sequenceID: UInt8.random(in: 0...3, using: &generator),
                payload: ByteBuffer(bytes: Self.randomBytes(&generator, max: 120)))
            switch machine.packetReceived(packet) {
            case .failAndClose, .startTLS, .lookUpCredential, .send:
                break
            case .authenticated, .wait:
                Issue.record("random bytes authenticated or stalled the handshake")
            }
        }
    }
}
