import CoreMetrics
import Logging
import MySQLWire
import NIOCore
import NIOEmbedded
import TestSupport
import Testing
import Topology

@testable import SQLProxy

/// Hostile bytes in the connection phase end that one session with an ERR where the protocol allows,
/// and never crash the process.
@Suite struct ClientSessionInputTests {
    private func session() throws -> (EmbeddedChannel, ProxyState) {
        let state = ProxyState()
        state.setPrimary(.init(name: "db", host: "127.0.0.1", port: 1))
        var settings = ProxySettings()
        settings.maxPacketSize = 1 << 16
        let environment = ClientSession.Environment(
            settings: settings, state: state, accounts: AccountDirectory { [] }, serverTLS: nil, backendTLS: nil,
            metrics: ProxyMetrics(factory: NOOPMetricsHandler.instance), logger: Logger(label: "test"))
        let channel = EmbeddedChannel(handler: ClientSession(environment: environment))
        channel.pipeline.fireChannelActive()
        return (channel, state)
    }

    @Test("The greeting is a HandshakeV10 with the session's id and no TLS offered without a certificate")
    func greeting() throws {
        let (channel, state) = try session()
        var out = try #require(try channel.readOutbound(as: ByteBuffer.self))
        var decoder = MySQLPacketDecoder()
        let packet = try #require(try decoder.decode(buffer: &out))
        let greeting = try Packets.HandshakeV10.decode(packet.payload)
        #expect(greeting.connectionID == 1)
        #expect(!greeting.capabilities.contains(.ssl))
        #expect(greeting.capabilities.contains(.mariaDBStatementBulkOperations))
        #expect(state.sessionCount == 1)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    @Test("An oversized packet gets ERR 1153 and the session closes")
    func oversize() throws {
        let (channel, state) = try session()
        _ = try channel.readOutbound(as: ByteBuffer.self)
        try channel.writeInbound(ByteBuffer(bytes: [0xFF, 0xFF, 0xFE, 0x01]))
        var out = try #require(try channel.readOutbound(as: ByteBuffer.self))
        var decoder = MySQLPacketDecoder()
        let error = try Packets.ErrorPacket.decode(
            try #require(try decoder.decode(buffer: &out)).payload, capabilities: [.protocol41])
        #expect(error.errorCode == 1153)
        #expect(!channel.isActive)
        #expect(state.sessionCount == 0)
    }

    @Test("Seeded random byte streams never crash the session", arguments: 0..<200)
    func randomInput(seed: Int) throws {
        var generator = SplitMix64(state: UInt64(seed))
        let (channel, _) = try session()
        _ = try channel.readOutbound(as: ByteBuffer.self)
        for _ in 0..<Int.random(in: 1...6, using: &generator) {
            guard channel.isActive else { break }
            let length = Int.random(in: 0...300, using: &generator)
            var bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if Bool.random(using: &generator), bytes.count >= 4 {
                // A plausible header, so the decoder gets past framing into the handshake machine.
                bytes[0] = UInt8(bytes.count - 4)
                bytes[1] = 0
                bytes[2] = 0
                bytes[3] = 1
            }
            try? channel.writeInbound(ByteBuffer(bytes: bytes))
        }
        while (try? channel.readOutbound(as: ByteBuffer.self)) != nil {}
        _ = try? channel.finish(acceptAlreadyClosed: true)
    }
}
