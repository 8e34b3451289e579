import MySQLWire
import NIOCore
import SessionHarness
import TestSupport
import Testing

/// Hostile bytes from the client and from the server into a logged-in session end that one session (with
/// an ERR where the protocol allows) and leave nothing behind: no registered session, no open backend
/// connection, no write to the client after the close.
@Suite struct WholeSessionInputTests {
    private static func query(_ sql: String) -> [UInt8] {
        SessionDriver.packet([Command.query.rawValue] + Array(sql.utf8), sequenceID: 0)
    }

    private static func packets(_ bytes: [UInt8]) throws -> [MySQLPacket] {
        var buffer = ByteBuffer(bytes: bytes)
        var decoder = MySQLPacketDecoder()
        var packets: [MySQLPacket] = []
        while let packet = try decoder.decode(buffer: &buffer) { packets.append(packet) }
        return packets
    }

    @Test("A well-behaved query and answer pass through and the session stays open")
    func wellBehaved() async throws {
        var ok = ByteBuffer()
        Packets.OKPacket(affectedRows: 3).encode(into: &ok, capabilities: [.protocol41])
        let outcome = try await SessionDriver.run([
            .send(.client, Self.query("DELETE FROM t")),
            .send(.server, SessionDriver.packet(Array(ok.readableBytesView), sequenceID: 1)),
        ])
        #expect(outcome.violations.isEmpty)
        #expect(!outcome.sessionClosedClient)
        let packets = try Self.packets(outcome.toClient)
        #expect(packets.count == 1)
        #expect(
            packets.first.map { try? Packets.OKPacket.decode($0.payload, capabilities: [.protocol41]) }??.affectedRows
                == 3)
    }

    @Test("A result set with a bogus column count ends the session and its backend connection")
    func bogusColumnCount() async throws {
        // 0xFC announces a two-byte length-encoded column count that is not there.
        let outcome = try await SessionDriver.run([
            .send(.client, Self.query("SELECT 1")),
            .send(.server, SessionDriver.packet([0xFC], sequenceID: 1)),
            .send(.client, Self.query("SELECT 2")),
        ])
        #expect(outcome.violations.isEmpty)
        #expect(outcome.sessionClosedClient)
        #expect(outcome.backendsOpened == 1)
    }

    @Test("A server sending packets nobody asked for ends the session; nothing reaches the client")
    func unsolicitedServerPacket() async throws {
        var ok = ByteBuffer()
        Packets.OKPacket().encode(into: &ok, capabilities: [.protocol41])
        let outcome = try await SessionDriver.run([
            .send(.server, SessionDriver.packet(Array(ok.readableBytesView), sequenceID: 1))
        ])
        #expect(outcome.violations.isEmpty)
        #expect(outcome.sessionClosedClient)
        #expect(outcome.toClient.isEmpty)
    }

    @Test("A COM_STMT_EXECUTE for an unknown id goes to the server, whose ERR reaches the client; the session stays")
    func executeUnknownStatement() async throws {
        var execute: [UInt8] = [Command.statementExecute.rawValue, 77, 0, 0, 0, 0, 1, 0, 0, 0]
        execute = SessionDriver.packet(execute, sequenceID: 0)
        var refusal = ByteBuffer()
        Packets.ErrorPacket(errorCode: 1243, sqlState: "HY000", message: "Unknown prepared statement handler (77)")
            .encode(into: &refusal, capabilities: [.protocol41])
        let outcome = try await SessionDriver.run([
            .send(.client, execute),
            .send(.server, SessionDriver.packet(Array(refusal.readableBytesView), sequenceID: 1)),
        ])
        #expect(outcome.violations.isEmpty)
        #expect(!outcome.sessionClosedClient)
        let packets = try Self.packets(outcome.toClient)
        let error = try #require(
            packets.first.map { try Packets.ErrorPacket.decode($0.payload, capabilities: [.protocol41]) })
        #expect(error.errorCode == 1243)
    }

    @Test("A client's truncated packet, then its EOF, ends the session and closes the backend connection")
    func truncatedClientPacketThenEOF() async throws {
        let truncated = Array(Self.query(String(repeating: "x", count: 100)).prefix(14))
        let outcome = try await SessionDriver.run([.send(.client, truncated), .close(.client)])
        #expect(outcome.violations.isEmpty)
        #expect(outcome.toClient.isEmpty)
    }

    @Test("A server's truncated answer, then its EOF, ends the session: the client is not left waiting")
    func truncatedServerAnswerThenEOF() async throws {
        let truncated = Array(SessionDriver.packet([0x01] + Array(repeating: 0x41, count: 60), sequenceID: 1).prefix(9))
        let outcome = try await SessionDriver.run([
            .send(.client, Self.query("SELECT 1")), .send(.server, truncated), .close(.server),
        ])
        #expect(outcome.violations.isEmpty)
        #expect(outcome.sessionClosedClient)
    }

    @Test("A server lost between statements is replaced at the next command, which the new connection answers")
    func backendLostBetweenStatements() async throws {
        var ok = ByteBuffer()
        Packets.OKPacket().encode(into: &ok, capabilities: [.protocol41])
        let outcome = try await SessionDriver.run([
            .close(.server), .send(.client, Self.query("SELECT 1")),
            .send(.server, SessionDriver.packet(Array(ok.readableBytesView), sequenceID: 1)),
        ])
        #expect(outcome.violations.isEmpty)
        #expect(!outcome.sessionClosedClient)
        #expect(outcome.backendsOpened == 2)
        #expect(try Self.packets(outcome.toClient).count == 1)
    }

    @Test("Seeded random scripts of client and server bytes never break the session's invariants", arguments: 0..<300)
    func randomScripts(seed: Int) async throws {
        var generator = SplitMix64(state: UInt64(seed))
        let bytes = (0..<Int.random(in: 1...700, using: &generator)).map { _ in
            UInt8.random(in: 0...255, using: &generator)
        }
        let (options, steps) = SessionDriver.script(fromFuzzInput: bytes)
        let outcome = try await SessionDriver.run(steps, options: options)
        #expect(outcome.violations.isEmpty)
    }
}
