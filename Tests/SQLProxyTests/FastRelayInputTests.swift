import MySQLWire
import SessionHarness
import TestSupport
import Testing

/// Hostile and broken bytes through the fast relay on real sockets (`RelayDriver`, as the fuzzer drives it):
/// it must never crash, and must give every session back exactly once (the driver traps otherwise). The driver
/// blocks on sockets, so it runs off Swift's cooperative pool, one script at a time.
@Suite("Fast relay input", .serialized)
struct FastRelayInputTests {
    @Test("The driver's TLS records open on both hops: a query and its answer are relayed, not handed back")
    func driverRelaysOnTLSHops() async throws {
        let query = SessionDriver.packet([Command.query.rawValue] + Array("SELECT 1".utf8), sequenceID: 0)
        let ok = SessionDriver.packet([0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00], sequenceID: 1)
        for (clientTLS, backendTLS) in [(false, false), (true, false), (false, true), (true, true)] {
            let outcome = try await offPool {
                try RelayDriver.run(
                    .init(clientTLS: clientTLS, backendTLS: backendTLS),
                    [(.send(.client, query), false), (.send(.server, ok), false)])
            }
            #expect(outcome.reason == "the session asked for it back", "\(clientTLS) \(backendTLS)")
            // A record adds a 5-byte header and a 16-byte tag (TLS 1.2 GCM also an 8-byte explicit nonce).
            #expect(outcome.toServer == query.count + (backendTLS ? 29 : 0))
            #expect(outcome.toClient == ok.count + (clientTLS ? 22 : 0))
        }
    }

    @Test("An answer that is a short EOF (1 byte) is relayed whole, and the relay keeps the session")
    func shortEOFAnswer() async throws {
        let query = SessionDriver.packet([Command.query.rawValue] + Array("SELECT 1".utf8), sequenceID: 0)
        let eof = SessionDriver.packet([0xFE], sequenceID: 1)
        let outcome = try await offPool {
            try RelayDriver.run(.init(), [(.send(.client, query), false), (.send(.server, eof), false)])
        }
        #expect(outcome.reason == "the session asked for it back")
        #expect(outcome.toClient == eof.count)
    }

    @Test("Seeded random scripts of client and server bytes, on plaintext and TLS hops", arguments: 0..<300)
    func randomScripts(seed: Int) async throws {
        var generator = SplitMix64(state: UInt64(seed) &+ 2_000_000)
        let bytes = (0..<Int.random(in: 1...700, using: &generator)).map { _ in
            UInt8.random(in: 0...255, using: &generator)
        }
        let (options, steps) = RelayDriver.script(fromFuzzInput: bytes)
        try await offPool { try RelayDriver.run(options, steps) }
    }

    @Test(
        "Seeded plausible conversations, now and then corrupted, on plaintext and TLS hops", arguments: 0..<300)
    func plausibleScripts(seed: Int) async throws {
        var generator = SplitMix64(state: UInt64(seed) &+ 3_000_000)
        let options = RelayDriver.Options(
            clientTLS: Bool.random(using: &generator), backendTLS: Bool.random(using: &generator),
            deprecateEOF: Bool.random(using: &generator))
        let steps = (0..<Int.random(in: 1...14, using: &generator)).map { _ in
            // One record in twenty goes unsealed on a TLS hop.
            (WholeSessionInputTests.plausibleStep(using: &generator), Int.random(in: 0..<20, using: &generator) == 0)
        }
        try await offPool { try RelayDriver.run(options, steps) }
    }
}
