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
            settings: settings, state: state,
            accounts: AccountDirectory { AccountTable(accounts: [], resolvesNames: false) }, serverTLS: nil,
            backendTLS: nil,
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

    @Test("An ed25519 login whose backend login fails after an auth switch gets its ERR with the next id (4, not 2)")
    func backendFailureAfterAuthSwitch() async throws {
        // No primary is known and the failover hold is 0, so the backend login for the ed25519 account
        // fails at once.
        let account = Account(
            user: "edu", host: "%", plugin: "ed25519", authenticationString: String(repeating: "A", count: 43))
        var settings = ProxySettings()
        settings.failoverHold = .zero
        let environment = ClientSession.Environment(
            settings: settings, state: ProxyState(),
            accounts: AccountDirectory { AccountTable(accounts: [account], resolvesNames: false) }, serverTLS: nil,
            backendTLS: nil, metrics: ProxyMetrics(factory: NOOPMetricsHandler.instance), logger: Logger(label: "test"))
        let channel = try await NIOAsyncTestingChannel { channel in
            try channel.pipeline.syncOperations.addHandler(ClientSession(environment: environment))
        }
        channel.pipeline.fireChannelActive()
        var decoder = MySQLPacketDecoder()
        var received = ByteBuffer()
        func next() async throws -> MySQLPacket {
            while true {
                if let packet = try decoder.decode(buffer: &received) { return packet }
                var more = try await channel.waitForOutboundWrite(as: ByteBuffer.self)
                received.writeBuffer(&more)
            }
        }
        func send(_ packet: MySQLPacket) async throws {
            var out = ByteBuffer()
            MySQLPacketEncoder.write(packet, into: &out)
            try await channel.writeInbound(out)
        }
        _ = try await next()  // the greeting
        // The client starts with client_ed25519; the proxy switches it to mysql_native_password (2), it answers (3).
        var response = ByteBuffer()
        Packets.HandshakeResponse41(
            capabilities: [.protocol41, .secureConnection, .pluginAuth, .longFlag, .transactions], collation: 45,
            username: "edu", authResponse: [], database: nil, authPluginName: "client_ed25519"
        ).encode(into: &response)
        try await send(MySQLPacket(sequenceID: 1, payload: response))
        let switchRequest = try await next()
        #expect(switchRequest.sequenceID == 2)
        #expect(Packets.AuthSwitchRequest.decode(switchRequest.payload)?.pluginName == "mysql_native_password")
        try await send(MySQLPacket(sequenceID: 3, payload: ByteBuffer(bytes: Array(repeating: 1, count: 20))))
        let refusal = try await next()
        #expect(refusal.sequenceID == 4)
        let error = try Packets.ErrorPacket.decode(refusal.payload, capabilities: [.protocol41])
        #expect(error.errorCode == 1105)
        _ = try await channel.finish(acceptAlreadyClosed: true)
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
            _ = try? channel.writeInbound(ByteBuffer(bytes: bytes))
        }
        while (try? channel.readOutbound(as: ByteBuffer.self)) != nil {}
        _ = try? channel.finish(acceptAlreadyClosed: true)
    }
}
