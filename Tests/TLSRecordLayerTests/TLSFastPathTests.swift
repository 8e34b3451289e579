import NIOCore
import NIOEmbedded
import NIOSSL
import Testing

@testable import TLSRecordLayer

/// The fast path against real BoringSSL peers (NIOSSL on both ends, wired back to back in memory): after
/// the handshake one or both ends switch to `TLSRecordHandler`, and every byte must still arrive intact
/// both ways, for every version and AEAD the fast path supports.
@Suite struct TLSFastPathTests {
    /// How a test pair negotiates.
    struct Negotiation: CustomTestStringConvertible, Sendable {
        var name: String
        var maximum: TLSVersion
        /// OpenSSL-style TLS 1.2 cipher list; nil for the default.
        var cipherSuites: String?
        /// Curves the server accepts; one the client does not offer a key share for forces a HelloRetryRequest.
        var serverCurves: [NIOTLSCurve]?
        var testDescription: String { name }

        static let all: [Negotiation] = [
            Negotiation(name: "TLS 1.3", maximum: .tlsv13),
            Negotiation(name: "TLS 1.3 after a HelloRetryRequest", maximum: .tlsv13, serverCurves: [.secp384r1]),
            Negotiation(name: "TLS 1.2 AES-128-GCM", maximum: .tlsv12, cipherSuites: "ECDHE-ECDSA-AES128-GCM-SHA256"),
            Negotiation(name: "TLS 1.2 AES-256-GCM", maximum: .tlsv12, cipherSuites: "ECDHE-ECDSA-AES256-GCM-SHA384"),
            Negotiation(
                name: "TLS 1.2 ChaCha20-Poly1305", maximum: .tlsv12, cipherSuites: "ECDHE-ECDSA-CHACHA20-POLY1305"),
        ]
    }

    struct Pair {
        var server: EmbeddedChannel
        var client: EmbeddedChannel
        var serverApp = Collector()
        var clientApp = Collector()
        /// Each end's own log, as two processes would have.
        var serverSecrets = TLSSecretLog()
        var clientSecrets = TLSSecretLog()

        init(_ negotiation: Negotiation) throws {
            var serverConfiguration = TLSConfiguration.makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMBytes(Array(Self.certificate.utf8)).map {
                    .certificate($0)
                },
                privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(Self.key.utf8), format: .pem)))
            serverConfiguration.maximumTLSVersion = negotiation.maximum
            serverConfiguration.keyLogCallback = serverSecrets.keyLogCallback
            if let suites = negotiation.cipherSuites { serverConfiguration.cipherSuites = suites }
            serverConfiguration.curves = negotiation.serverCurves
            var clientConfiguration = TLSConfiguration.makeClientConfiguration()
            clientConfiguration.trustRoots = .certificates(
                try NIOSSLCertificate.fromPEMBytes(Array(Self.certificate.utf8)))
            clientConfiguration.maximumTLSVersion = negotiation.maximum
            clientConfiguration.keyLogCallback = clientSecrets.keyLogCallback
            server = EmbeddedChannel()
            client = EmbeddedChannel()
            // Connected first, so each TLS handler starts as soon as it is added, as in the proxy.
            let address = try SocketAddress(ipAddress: "127.0.0.1", port: 3306)
            try server.connect(to: address).wait()
            try client.connect(to: address).wait()
            try server.pipeline.syncOperations.addHandler(serverApp)
            try client.pipeline.syncOperations.addHandler(clientApp)
            try TLSFastPath.addTLSHandler(
                NIOSSLServerHandler(context: NIOSSLContext(configuration: serverConfiguration)), role: .server,
                secrets: serverSecrets, to: server.pipeline.syncOperations)
            try TLSFastPath.addTLSHandler(
                NIOSSLClientHandler(
                    context: NIOSSLContext(configuration: clientConfiguration), serverHostname: "localhost"),
                role: .client, secrets: clientSecrets, to: client.pipeline.syncOperations)
            try shuttle()
        }

        /// Moves bytes between the two ends until both are quiet.
        func shuttle() throws {
            var moved = true
            while moved {
                moved = false
                while let bytes = try client.readOutbound(as: ByteBuffer.self) {
                    try server.writeInbound(bytes)
                    moved = true
                }
                while let bytes = try server.readOutbound(as: ByteBuffer.self) {
                    try client.writeInbound(bytes)
                    moved = true
                }
            }
        }

        /// Sends `count` patterned bytes each way and checks they arrive.
        func exchange(_ count: Int, seed: UInt8) throws {
            let up = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ Int(seed)) }
            let down = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ Int(seed)) }
            serverApp.received = []
            clientApp.received = []
            client.writeAndFlush(ByteBuffer(bytes: up), promise: nil)
            try shuttle()
            server.writeAndFlush(ByteBuffer(bytes: down), promise: nil)
            try shuttle()
            // Compared first so a failure does not print 100 kB.
            let upArrived = serverApp.received == up
            let downArrived = clientApp.received == down
            #expect(upArrived, "\(serverApp.received.count) of \(up.count) bytes")
            #expect(downArrived, "\(clientApp.received.count) of \(down.count) bytes")
        }

        static let certificate = """
            -----BEGIN CERTIFICATE-----
            MIIBlTCCATugAwIBAgIUfCEBJQHn6DCKF+ehZiT3Nqw8huowCgYIKoZIzj0EAwIw
            FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEzMDIwMTExNloYDzIxMjYxMTA2
            MjAxMTE2WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
            PQMBBwNCAASjBIaYJ4DBSVYhbgNpSC+j3Yrq0fN8Ks0OZ2hKbe0d2HNpsPGj12Y2
            RMzEYFXTdv1z8DBan0u0agH7aDbrK+lwo2kwZzAdBgNVHQ4EFgQU9DurNGJp/UHU
            4IGuYhaV/dCYrVkwHwYDVR0jBBgwFoAU9DurNGJp/UHU4IGuYhaV/dCYrVkwDwYD
            VR0TAQH/BAUwAwEB/zAUBgNVHREEDTALgglsb2NhbGhvc3QwCgYIKoZIzj0EAwID
            SAAwRQIgNaQrmsm7mnfAAopqTWRqpgHTfaUMHK7z3qZRXwqY35kCIQC+7NHg3B0V
            SBIP6Z471vzbS5T/E89nMTedhYDfvNeyVQ==
            -----END CERTIFICATE-----
            """
        /// A throwaway key for these tests only.
        static let key = """
            -----BEGIN PRIVATE KEY-----
            MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQghLEoUZD2FLLA/vcj
            OofiyzV2cqc3tji6/pse0HQINfShRANCAASjBIaYJ4DBSVYhbgNpSC+j3Yrq0fN8
            Ks0OZ2hKbe0d2HNpsPGj12Y2RMzEYFXTdv1z8DBan0u0agH7aDbrK+lw
            -----END PRIVATE KEY-----
            """
    }

    private func takeOver(_ channel: EmbeddedChannel) throws -> TLSRecordHandler {
        try TLSFastPath.takeOver(channel.pipeline.syncOperations).get()
    }

    private func takeOverServer(_ pair: Pair) throws -> TLSRecordHandler {
        try takeOver(pair.server)
    }
    private func takeOverClient(_ pair: Pair) throws -> TLSRecordHandler {
        try takeOver(pair.client)
    }

    @Test(
        "The server end switches after the handshake; a BoringSSL client reads and writes through it",
        arguments: Negotiation.all)
    func serverSwitches(_ negotiation: Negotiation) throws {
        let pair = try Pair(negotiation)
        try pair.exchange(300, seed: 1)  // like a login: application data both ways before the switch
        let handler = try takeOverServer(pair)
        #expect(handler.version == (negotiation.maximum == .tlsv13 ? .tls13 : .tls12))
        #expect((try? pair.server.pipeline.syncOperations.handler(type: NIOSSLHandler.self)) == nil)
        try pair.exchange(5, seed: 2)
        try pair.exchange(100_000, seed: 3)  // several full-size records
        try pair.exchange(0, seed: 4)
        try pair.exchange(16_384, seed: 5)
        #expect(pair.serverApp.errors.isEmpty && pair.clientApp.errors.isEmpty)
    }

    @Test("The client end switches; a BoringSSL server reads and writes through it", arguments: Negotiation.all)
    func clientSwitches(_ negotiation: Negotiation) throws {
        let pair = try Pair(negotiation)
        try pair.exchange(300, seed: 1)
        _ = try takeOverClient(pair)
        try pair.exchange(7, seed: 2)
        try pair.exchange(70_000, seed: 3)
        #expect(pair.serverApp.errors.isEmpty && pair.clientApp.errors.isEmpty)
    }

    @Test("Both ends switch and keep talking", arguments: Negotiation.all)
    func bothSwitch(_ negotiation: Negotiation) throws {
        let pair = try Pair(negotiation)
        try pair.exchange(64, seed: 1)
        _ = try takeOverServer(pair)
        _ = try takeOverClient(pair)
        for round in 0..<20 { try pair.exchange(round * 997, seed: UInt8(round)) }
        #expect(pair.serverSecrets.count == 0 && pair.clientSecrets.count == 0)  // both ends took their secrets
    }

    @Test("A HelloRetryRequest is seen through: the second ServerHello's suite is used and the switch works")
    func helloRetry() throws {
        let pair = try Pair(Negotiation.all[1])
        let observer = try pair.server.pipeline.syncOperations.handler(type: TLSHandshakeObserver.self)
        #expect(observer.helloRetryRequests == 1)
        try pair.exchange(100, seed: 1)
        _ = try takeOverServer(pair)
        _ = try takeOverClient(pair)
        try pair.exchange(20_000, seed: 2)
    }

    @Test("A record delivered in pieces, and several records in one read, are both read whole")
    func fragmentedRecords() throws {
        let pair = try Pair(Negotiation.all[0])
        try pair.exchange(10, seed: 1)
        _ = try takeOverServer(pair)
        let message = Array(repeating: UInt8(ascii: "x"), count: 40_000)
        pair.serverApp.received = []
        pair.client.writeAndFlush(ByteBuffer(bytes: message), promise: nil)
        var wire = ByteBuffer()
        while var bytes = try pair.client.readOutbound(as: ByteBuffer.self) { wire.writeBuffer(&bytes) }
        // Byte by byte for the first 100 bytes, then the rest at once.
        for _ in 0..<100 { try pair.server.writeInbound(wire.readSlice(length: 1)!) }
        try pair.server.writeInbound(wire)
        #expect(pair.serverApp.received.count == message.count && pair.serverApp.received.allSatisfy { $0 == 120 })
    }

    @Test("A tampered record ends the connection with bad_record_mac and delivers nothing")
    func tamperedRecord() throws {
        let pair = try Pair(Negotiation.all[0])
        try pair.exchange(10, seed: 1)
        _ = try takeOverServer(pair)
        pair.serverApp.received = []
        pair.clientApp.received = []
        pair.client.writeAndFlush(ByteBuffer(bytes: Array("SELECT 1".utf8)), promise: nil)
        var record = try #require(try pair.client.readOutbound(as: ByteBuffer.self))
        let last = record.writerIndex - 1
        record.setInteger(record.getInteger(at: last, as: UInt8.self)! ^ 1, at: last)
        try pair.server.writeInbound(record)
        #expect(pair.serverApp.received.isEmpty)
        #expect(pair.serverApp.errors.contains { ($0 as? TLSRecordError) == .badRecordMAC })
        #expect(!pair.server.isActive)
        // The alert reaches the BoringSSL client as a TLS error, not as data.
        while let bytes = try pair.server.readOutbound(as: ByteBuffer.self) { _ = try? pair.client.writeInbound(bytes) }
        #expect(pair.clientApp.received.isEmpty)
    }

    @Test("Closing the fast-path end sends close_notify: the BoringSSL peer sees a clean shutdown")
    func closeNotify() throws {
        let pair = try Pair(Negotiation.all[0])
        try pair.exchange(10, seed: 1)
        _ = try takeOverServer(pair)
        try pair.server.close().wait()
        while let bytes = try pair.server.readOutbound(as: ByteBuffer.self) { try pair.client.writeInbound(bytes) }
        #expect(
            !pair.clientApp.errors.contains {
                ($0 as? NIOSSLError).map { "\($0)".contains("uncleanShutdown") } ?? false
            })
    }

    @Test("The client's close_notify closes the fast-path end")
    func peerCloseNotify() throws {
        let pair = try Pair(Negotiation.all[1])
        try pair.exchange(10, seed: 1)
        _ = try takeOverServer(pair)
        pair.client.close(promise: nil)
        while let bytes = try pair.client.readOutbound(as: ByteBuffer.self) { try pair.server.writeInbound(bytes) }
        #expect(!pair.server.isActive)
        #expect(pair.serverApp.errors.isEmpty)
    }

    @Test("Without logged secrets the connection stays on NIOSSL and keeps working")
    func noSecrets() throws {
        let pair = try Pair(Negotiation.all[0])
        try pair.exchange(10, seed: 1)
        let observer = try pair.server.pipeline.syncOperations.handler(type: TLSHandshakeObserver.self)
        pair.serverSecrets.discard(clientRandom: try #require(observer.clientRandom))
        let result = TLSFastPath.takeOver(pair.server.pipeline.syncOperations)
        guard case .failure(let reason) = result else {
            Issue.record("took over without secrets")
            return
        }
        #expect("\(reason)".contains("no session secrets"))
        #expect((try? pair.server.pipeline.syncOperations.handler(type: NIOSSLHandler.self)) != nil)
        #expect((try? pair.server.pipeline.syncOperations.handler(type: TLSHandshakeObserver.self)) == nil)
        try pair.exchange(1000, seed: 2)
    }

    @Test("A connection that ends before the switch leaves no secrets behind")
    func secretsDroppedOnClose() throws {
        let pair = try Pair(Negotiation.all[0])
        try pair.exchange(10, seed: 1)
        #expect(pair.serverSecrets.count == 1 && pair.clientSecrets.count == 1)
        // NIOSSL closes after the close_notify exchange.
        pair.server.close(promise: nil)
        pair.client.close(promise: nil)
        try? pair.shuttle()
        pair.server.embeddedEventLoop.advanceTime(by: .seconds(10))
        pair.client.embeddedEventLoop.advanceTime(by: .seconds(10))
        #expect(!pair.server.isActive && !pair.client.isActive)
        #expect(pair.serverSecrets.count == 0 && pair.clientSecrets.count == 0)
    }
}
