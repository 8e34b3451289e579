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

    @Test("An answer that is a short EOF (1 byte) reaches the client as it is, and the session goes on")
    func shortEOFAnswer() async throws {
        // The fuzzer's input `01 00 00 02 fe 00` crashed the process here: reading the EOF's status went past
        // its end.
        var ok = ByteBuffer()
        Packets.OKPacket(affectedRows: 1).encode(into: &ok, capabilities: [.protocol41])
        let outcome = try await SessionDriver.run([
            .send(.client, Self.query("SELECT 1")),
            .send(.server, SessionDriver.packet([0xFE], sequenceID: 1)),
            .send(.client, Self.query("DELETE FROM t")),
            .send(.server, SessionDriver.packet(Array(ok.readableBytesView), sequenceID: 1)),
        ])
        #expect(outcome.violations.isEmpty)
        #expect(!outcome.sessionClosedClient)
        let packets = try Self.packets(outcome.toClient)
        #expect(packets.map { Array($0.payload.readableBytesView) } == [[0xFE], Array(ok.readableBytesView)])
    }

    @Test("A result set with a bogus column count gets ERR 1158 in its place and ends the session")
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
        let packets = try Self.packets(outcome.toClient)
        #expect(packets.count == 1)
        let error = try #require(
            packets.first.map { try Packets.ErrorPacket.decode($0.payload, capabilities: [.protocol41]) })
        #expect(error.errorCode == 1158)
        #expect(packets.first?.sequenceID == 1)
    }

    @Test("A result set broken after its column definitions: the client gets what came before, then ERR 1158")
    func brokenResultSet() async throws {
        // Without CLIENT_DEPRECATE_EOF an EOF must follow the column definitions; the server sends a row.
        let outcome = try await SessionDriver.run(
            [
                .send(.client, Self.query("SELECT 1")),
                .send(
                    .server,
                    SessionDriver.packet([1], sequenceID: 1) + SessionDriver.packet(Array("def".utf8), sequenceID: 2)
                        + SessionDriver.packet([1, 0x31], sequenceID: 3)),
            ], options: .init(deprecateEOF: false))
        #expect(outcome.violations.isEmpty)
        #expect(outcome.sessionClosedClient)
        let packets = try Self.packets(outcome.toClient)
        #expect(packets.map(\.sequenceID) == [1, 2, 3])
        let error = try #require(
            packets.last.map { try Packets.ErrorPacket.decode($0.payload, capabilities: [.protocol41]) })
        #expect(error.errorCode == 1158)
    }

    @Test("A whole answer that came in the same read as a packet nobody asked for still reaches the client")
    func answerBeforeUnsolicitedPacket() async throws {
        var ok = ByteBuffer()
        Packets.OKPacket().encode(into: &ok, capabilities: [.protocol41])
        let outcome = try await SessionDriver.run([
            .send(.client, Self.query("DO 1")),
            .send(
                .server,
                SessionDriver.packet(Array(ok.readableBytesView), sequenceID: 1)
                    + SessionDriver.packet([0xFC], sequenceID: 1)),
        ])
        #expect(outcome.violations.isEmpty)
        #expect(outcome.sessionClosedClient)
        let packets = try Self.packets(outcome.toClient)
        #expect(packets.count == 1)
        #expect(packets.first.flatMap { $0.payload.getInteger(at: $0.payload.readerIndex, as: UInt8.self) } == 0)
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

    @Test(
        "Seeded plausible conversations, now and then corrupted, never break the session's invariants",
        arguments: 0..<300)
    func plausibleScripts(seed: Int) async throws {
        var generator = SplitMix64(state: UInt64(seed) &+ 1_000_000)
        let steps = (0..<Int.random(in: 1...14, using: &generator)).map { _ in
            Self.plausibleStep(using: &generator)
        }
        let outcome = try await SessionDriver.run(steps)
        #expect(outcome.violations.isEmpty)
    }

    /// A command or an answer such as a client or a MariaDB server sends, in or out of turn; one in six
    /// has a byte changed or is cut short.
    static func plausibleStep(using generator: inout SplitMix64) -> SessionDriver.Step {
        func server(_ payloads: [[UInt8]]) -> [UInt8] {
            payloads.enumerated().flatMap { SessionDriver.packet($0.element, sequenceID: UInt8($0.offset + 1)) }
        }
        func id() -> [UInt8] { [UInt8.random(in: 0...3, using: &generator), 0, 0, 0] }
        let status: [UInt8] = [[0x02, 0x00], [0x03, 0x00], [0x0A, 0x00], [0x00, 0x00]].randomElement(using: &generator)!
        let ok: [UInt8] = [0x00, 0x00, 0x00] + status + [0x00, 0x00]
        let endOfRows: [UInt8] = [0xFE, 0x00, 0x00] + status + [0x00, 0x00]
        let columns = Int.random(in: 1...3, using: &generator)
        var step: SessionDriver.Step
        switch Int.random(in: 0..<16, using: &generator) {
        case 0, 1:
            let sql = ["SELECT 1", "SET @a = 1", "BEGIN", "SELECT LAST_INSERT_ID()", "KILL 1", "USE db"]
                .randomElement(using: &generator)!
            step = .send(.client, query(sql))
        case 2:
            step = .send(
                .client,
                SessionDriver.packet([Command.statementPrepare.rawValue] + Array("SELECT ?".utf8), sequenceID: 0))
        case 3:
            step = .send(
                .client,
                SessionDriver.packet([Command.statementExecute.rawValue] + id() + [0, 1, 0, 0, 0], sequenceID: 0))
        case 4: step = .send(.client, SessionDriver.packet([Command.statementClose.rawValue] + id(), sequenceID: 0))
        case 5:
            let command = [Command.ping, .resetConnection, .initDB, .statistics, .quit, .changeUser, .fieldList]
                .randomElement(using: &generator)!
            step = .send(.client, SessionDriver.packet([command.rawValue] + Array("fuzz".utf8) + [0], sequenceID: 0))
        case 6: step = .send(.server, server([ok]))
        case 7: step = .send(.server, server([[0xFF, 0x48, 0x04, 0x23] + Array("HY000oops".utf8)]))
        case 8:
            let definitions = (0..<columns).map { _ in [0x03] + Array("def".utf8) + [0x00, 0x01, 0x61] }
            step = .send(.server, server([[UInt8(columns)]] + definitions + [[0x01, 0x31], endOfRows]))
        case 9:
            let prepared: [UInt8] = [0x00] + id() + [UInt8(columns), 0, 1, 0, 0, 0, 0]
            let definitions = (0..<(columns + 1)).map { _ in [0x03] + Array("def".utf8) }
            step = .send(.server, server([prepared] + definitions))
        case 10: step = .send(.server, server([[0xFB] + Array("/etc/passwd".utf8)]))
        case 11: step = .send(.client, SessionDriver.packet([], sequenceID: 2))
        case 12: step = .close(.server)
        case 13: step = .close(.client)
        default:
            let side: SessionDriver.Side = Bool.random(using: &generator) ? .client : .server
            step = .send(
                side,
                (0..<Int.random(in: 1...40, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator)
                })
        }
        if case .send(let side, var bytes) = step, !bytes.isEmpty, Int.random(in: 0..<6, using: &generator) == 0 {
            if Bool.random(using: &generator) {
                bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
            } else {
                bytes.removeLast(Int.random(in: 1...bytes.count, using: &generator))
            }
            step = .send(side, bytes)
        }
        return step
    }
}
