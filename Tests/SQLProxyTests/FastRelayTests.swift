import Logging
import Metrics
import MySQLWire
import NIOConcurrencyHelpers
import NIOCore
import SessionHarness
import Testing
import Topology

@testable import SQLProxy
@testable import TLSRecordLayer

#if canImport(Glibc)
    import Glibc
#endif

/// `FastRelay` on real sockets (socket pairs, plaintext hops): what it relays, and when and how it gives a
/// session back to `ClientSession`.
@Suite("Fast relay")
struct FastRelayTests {
    /// A relayed session over two socket pairs: the test plays the client and the server on the far ends.
    final class Harness: Sendable {
        let relay = FastRelay(threads: 1, busyPoll: ProxySettings().relayBusyPoll, logger: Logger(label: "test"))
        let state = ProxyState()
        let server = ServerIdentity(name: "s1", host: "127.0.0.1", port: 3306)
        /// The test's ends: the client's and the server's.
        let client: Int32
        let backend: Int32
        let session: RelayedSession
        private let returnedSession = ConditionLock(value: 0)

        init(
            capabilities: CapabilityFlags = [.protocol41, .deprecateEOF],
            clientRecords: TLSRecordHandler.Suspended? = nil
        ) {
            state.setPrimary(server)
            let returned = returnedSession
            let made = RelayDriver.sessionOnSocketPairs(
                clientRecords: clientRecords, backendRecords: nil, capabilities: capabilities, state: state,
                server: server, largestPacket: 1 << 20,
                returned: { _ in
                    returned.lock()
                    returned.unlock(withValue: 1)
                })!
            (session, client, backend) = (made.session, made.client, made.server)
            relay.adopt(session)
        }

        /// Waits until the relay gives the session back; false after 10 s.
        func waitForReturn() -> Bool {
            guard returnedSession.lock(whenValue: 1, timeoutSeconds: 10) else { return false }
            returnedSession.unlock()
            return true
        }

        var isReturned: Bool { returnedSession.value == 1 }

        func finish() {
            relay.stop()
            for fd in [client, backend, session.client.descriptor, session.backend.descriptor] { close(fd) }
        }
    }

    static func packet(_ sequenceID: UInt8, _ payload: [UInt8]) -> [UInt8] {
        [UInt8(payload.count & 0xFF), UInt8(payload.count >> 8 & 0xFF), UInt8(payload.count >> 16), sequenceID]
            + payload
    }

    static func query(_ sql: String) -> [UInt8] { packet(0, [Command.query.rawValue] + Array(sql.utf8)) }
    static let ok = packet(1, [0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00])

    static func send(_ bytes: [UInt8], to fd: Int32) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            precondition(written > 0, "write failed: \(errno)")
            offset += written
        }
    }

    /// Reads exactly `count` bytes, or what came within 10 s.
    static func receive(_ count: Int, from fd: Int32) -> [UInt8] {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while bytes.count < count {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 10_000) == 1 else { break }
            let got = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, min($0.count, count - bytes.count)) }
            guard got > 0 else { break }
            bytes += buffer[0..<got]
        }
        return bytes
    }

    @Test("A query goes to the server and its answer to the client, byte for byte; the session stays relayed")
    func relaysQueryAndAnswer() {
        let harness = Harness()
        defer { harness.finish() }
        for sql in ["SELECT 1", "SET @a = 1", "BEGIN"] {
            Self.send(Self.query(sql), to: harness.client)
            #expect(Self.receive(Self.query(sql).count, from: harness.backend) == Self.query(sql))
            Self.send(Self.ok, to: harness.backend)
            #expect(Self.receive(Self.ok.count, from: harness.client) == Self.ok)
        }
        #expect(!harness.isReturned)
    }

    @Test(
        "Commands the relay leaves to the session come back unread, with what came before them relayed",
        arguments: [
            Self.packet(0, [Command.quit.rawValue]),
            Self.packet(0, [Command.changeUser.rawValue, 0x61, 0x00]),
            Self.packet(0, [Command.processKill.rawValue, 1, 0, 0, 0]),
            Self.query("KILL 12"),
            Self.packet(3, [Command.query.rawValue, 0x31]),  // out of order
            Self.packet(0, [0x7E]),  // no such command
        ])
    func givesBackCommands(_ command: [UInt8]) {
        let harness = Harness()
        defer { harness.finish() }
        Self.send(Self.query("SELECT 1") + command, to: harness.client)
        #expect(Self.receive(Self.query("SELECT 1").count, from: harness.backend) == Self.query("SELECT 1"))
        #expect(harness.waitForReturn())
        var left = harness.session.clientBytes
        #expect(left.readBytes(length: left.readableBytes) == command)
        // The query is still waiting for its answer, which the session now follows.
        #expect(harness.session.relay.pending.count == 1)
    }

    /// A TLS version, cipher suite and a control record the relay must hand back (sealed as `controlType`).
    struct TLSCase: Sendable, CustomStringConvertible {
        var version: TLSRecordVersion
        var suite: TLSCipherSuite
        var ivLength: Int
        var controlType: UInt8
        var control: [UInt8]
        var description: String { "\(version), control record type \(controlType)" }
    }

    @Test(
        "TLS on the client hop: records are opened and sealed; a control record goes back unread with the reader before it",
        arguments: [
            // TLS 1.3 AES-128-GCM: a KeyUpdate (a handshake message inside an application-data record).
            TLSCase(
                version: .tls13, suite: .tls13(0x1301)!, ivLength: 12, controlType: TLSContentType.handshake,
                control: [24, 0, 0, 1, 0]),
            // TLS 1.2 ECDHE-RSA-AES128-GCM: a close_notify warning alert (its own record type, explicit nonce).
            TLSCase(
                version: .tls12, suite: .tls12(0xC02F)!, ivLength: 4, controlType: TLSContentType.alert,
                control: [1, 0]),
        ])
    func tlsClientHop(_ tls: TLSCase) throws {
        let fromClient = TLSTrafficKeys(
            key: Array(repeating: 1, count: 16), iv: Array(repeating: 2, count: tls.ivLength), secret: [])
        let toClient = TLSTrafficKeys(
            key: Array(repeating: 3, count: 16), iv: Array(repeating: 4, count: tls.ivLength), secret: [])
        func protection(_ keys: TLSTrafficKeys, sealing: Bool) throws -> TLSRecordProtection {
            try TLSRecordProtection(version: tls.version, suite: tls.suite, keys: keys, sequence: 0, sealing: sealing)
        }
        let harness = Harness(
            clientRecords: .init(
                reader: try protection(fromClient, sealing: false), writer: try protection(toClient, sealing: true),
                partial: ByteBuffer()))
        defer { harness.finish() }
        var clientWriter = try protection(fromClient, sealing: true)
        var clientReader = try protection(toClient, sealing: false)
        func seal(_ type: UInt8, _ bytes: [UInt8]) throws -> [UInt8] {
            var record = ByteBuffer()
            try clientWriter.seal(type: type, bytes, into: &record)
            return Array(record.readableBytesView)
        }

        Self.send(try seal(TLSContentType.applicationData, Self.query("SELECT 1")), to: harness.client)
        #expect(Self.receive(Self.query("SELECT 1").count, from: harness.backend) == Self.query("SELECT 1"))
        Self.send(Self.ok, to: harness.backend)
        let record = Self.receive(Self.ok.count + clientReader.overhead, from: harness.client)
        var answer = ByteBuffer()
        let type = try Array(record.dropFirst(5)).withUnsafeBytes {
            try clientReader.open(outerType: record[0], body: $0, into: &answer)
        }
        #expect(type == TLSContentType.applicationData && Array(answer.readableBytesView) == Self.ok)

        let control = try seal(tls.controlType, tls.control)
        Self.send(control, to: harness.client)
        #expect(harness.waitForReturn())
        var records = try #require(harness.session.client.records)
        #expect(Array(records.partial.readableBytesView) == control)
        // The session's record handler opens it next, with the reader as the relay left it.
        var message = ByteBuffer()
        let inner = try control.dropFirst(5).withUnsafeBytes {
            try records.reader.open(outerType: control[0], body: $0, into: &message)
        }
        #expect(inner == tls.controlType && Array(message.readableBytesView) == tls.control)
    }

    @Test("CONNECTION_ID() reaches the server as the proxy's id, as through SwiftNIO")
    func rewritesConnectionID() {
        let harness = Harness()
        defer { harness.finish() }
        Self.send(Self.query("SELECT CONNECTION_ID()"), to: harness.client)
        let expected = Self.query("SELECT CAST(0000000007 AS UNSIGNED) AS `CONNECTION_ID()`")
        #expect(Self.receive(expected.count, from: harness.backend) == expected)
        Self.send(Self.ok, to: harness.backend)
        #expect(Self.receive(Self.ok.count, from: harness.client) == Self.ok)
        #expect(!harness.isReturned)
    }

    @Test("Pipelined commands in one read reach the server in order when one between them is rewritten")
    func rewritesAmongPipelinedCommands() {
        let harness = Harness()
        defer { harness.finish() }
        Self.send(
            Self.query("SELECT 1") + Self.query("SELECT CONNECTION_ID()") + Self.query("SELECT 2"),
            to: harness.client)
        let expected =
            Self.query("SELECT 1") + Self.query("SELECT CAST(0000000007 AS UNSIGNED) AS `CONNECTION_ID()`")
            + Self.query("SELECT 2")
        #expect(Self.receive(expected.count, from: harness.backend) == expected)
        Self.send(Self.ok + Self.ok + Self.ok, to: harness.backend)
        #expect(Self.receive(3 * Self.ok.count, from: harness.client) == Self.ok + Self.ok + Self.ok)
        #expect(!harness.isReturned)
    }

    @Test("After the primary moves, the next command goes back to the session (which moves it) unsent")
    func givesBackWhenPrimaryMoved() {
        let harness = Harness()
        defer { harness.finish() }
        harness.state.setPrimary(ServerIdentity(name: "s2", host: "127.0.0.1", port: 3307))
        Self.send(Self.query("SELECT 1"), to: harness.client)
        #expect(harness.waitForReturn())
        #expect(harness.session.clientBytes.readableBytes == Self.query("SELECT 1").count)
        #expect(harness.session.relay.pending.isEmpty)
    }

    @Test("A server packet nobody asked for, and a LOCAL INFILE request, go back to the session unread")
    func givesBackUnusualAnswers() {
        for (asked, answer) in [(false, Self.ok), (true, Self.packet(1, [0xFB] + Array("/tmp/x".utf8)))] {
            let harness = Harness()
            defer { harness.finish() }
            if asked {
                Self.send(Self.query("LOAD DATA LOCAL INFILE '/tmp/x' INTO TABLE t"), to: harness.client)
                _ = Self.receive(
                    Self.query("LOAD DATA LOCAL INFILE '/tmp/x' INTO TABLE t").count, from: harness.backend)
            }
            Self.send(answer, to: harness.backend)
            #expect(harness.waitForReturn())
            var left = harness.session.backendBytes
            #expect(left.readBytes(length: left.readableBytes) == answer)
            #expect(!harness.session.relay.sendingLocalFile)
            // Nothing of the packet was noted: the session reads it as if the relay had never seen it.
            let metrics = ProxyMetrics(factory: NOOPMetricsHandler.instance)
            let scan = harness.session.relay.scanAnswers(
                harness.session.backendBytes, metrics: metrics, handOverUnusual: false)
            if asked {
                #expect(scan.stop == nil && harness.session.relay.sendingLocalFile)
            } else if case .broken(start: 0, errorSequenceID: nil, _)? = scan.stop {
            } else {
                Issue.record("an unasked packet is not reported as broken: \(String(describing: scan.stop))")
            }
        }
    }

    @Test("EOF from the client gives the session back")
    func givesBackAtEOF() {
        let harness = Harness()
        defer { harness.finish() }
        shutdown(harness.client, Int32(SHUT_WR))
        #expect(harness.waitForReturn())
    }

    @Test("A large answer to a client that does not read waits at the server (flat memory), then arrives whole")
    func backpressure() {
        let harness = Harness(capabilities: [.protocol41])
        defer { harness.finish() }
        Self.send(Self.query("SELECT repeat('x', 1000) FROM seq_1_to_10000"), to: harness.client)
        _ = Self.receive(Self.query("SELECT repeat('x', 1000) FROM seq_1_to_10000").count, from: harness.backend)
        // A result set: one column, its definition, EOF, 10,000 rows of 1,000 bytes, EOF.
        var answer = Self.packet(1, [1]) + Self.packet(2, Array(repeating: 0x41, count: 40))
        answer += Self.packet(3, [0xFE, 0, 0, 0x02, 0])
        var sequence: UInt8 = 4
        for _ in 0..<10_000 {
            answer += Self.packet(sequence, [0xFC, 0xE8, 0x03] + Array(repeating: 0x78, count: 1000))
            sequence &+= 1
        }
        answer += Self.packet(sequence, [0xFE, 0, 0, 0x02, 0])
        _ = fcntl(harness.backend, F_SETFL, fcntl(harness.backend, F_GETFL) | O_NONBLOCK)
        var offset = 0
        var stalled = false
        // The server writes while the client reads nothing: the relay must stop reading the server, so
        // the server's socket fills up (stays unwritable) long before the whole answer is written.
        while offset < answer.count && !stalled {
            let written = answer[offset...].withUnsafeBytes { write(harness.backend, $0.baseAddress, $0.count) }
            if written > 0 {
                offset += written
                continue
            }
            var poller = pollfd(fd: harness.backend, events: Int16(POLLOUT), revents: 0)
            stalled = poll(&poller, 1, 500) == 0
        }
        #expect(stalled && offset < answer.count / 2, "the relay kept reading the server: \(offset) bytes taken")
        // Now the client reads everything while the rest is written.
        let reader = Task.detached { Self.receive(answer.count, from: harness.client) }
        _ = fcntl(harness.backend, F_SETFL, fcntl(harness.backend, F_GETFL) & ~O_NONBLOCK)
        Self.send(Array(answer[offset...]), to: harness.backend)
        let received = waitForTask(reader)
        #expect(received.count == answer.count && received == answer)
        #expect(!harness.isReturned)
    }

    @Test("A server hang-up while the client's socket is full gives the session back with nothing lost")
    func serverHangUpWhileClientFull() {
        let harness = Harness(capabilities: [.protocol41])
        defer { harness.finish() }
        let query = Self.query("SELECT repeat('x', 1000) FROM seq_1_to_10000")
        Self.send(query, to: harness.client)
        _ = Self.receive(query.count, from: harness.backend)
        var answer = Self.packet(1, [1]) + Self.packet(2, Array(repeating: 0x41, count: 40))
        answer += Self.packet(3, [0xFE, 0, 0, 0x02, 0])
        for index in 0..<10_000 {
            answer += Self.packet(
                UInt8(truncatingIfNeeded: 4 + index), [0xFC, 0xE8, 0x03] + Array(repeating: 0x78, count: 1000))
        }
        // The server writes until its socket stays full (the relay has stopped reading it), then hangs up.
        _ = fcntl(harness.backend, F_SETFL, fcntl(harness.backend, F_GETFL) | O_NONBLOCK)
        var offset = 0
        while offset < answer.count {
            let written = answer[offset...].withUnsafeBytes { write(harness.backend, $0.baseAddress, $0.count) }
            if written > 0 {
                offset += written
                continue
            }
            var poller = pollfd(fd: harness.backend, events: Int16(POLLOUT), revents: 0)
            if poll(&poller, 1, 500) == 0 { break }
        }
        #expect(offset < answer.count)
        shutdown(harness.backend, Int32(SHUT_RDWR))
        #expect(harness.waitForReturn())
        // Every byte the server wrote is somewhere the session reaches: in the client's socket, in what the
        // relay had not written yet, in what it had not relayed, or still unread in the server's socket.
        var found = Self.drain(harness.client)
        found += Array(harness.session.client.unsent.readableBytesView)
        found += Array(harness.session.backendBytes.readableBytesView)
        found += Self.drain(harness.session.backend.descriptor)
        #expect(found.count == offset && found == Array(answer[..<offset]))
    }

    /// What a socket has now, without waiting.
    static func drain(_ fd: Int32) -> [UInt8] {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let got = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard got > 0 else { return bytes }
            bytes += buffer[0..<got]
        }
    }
}

/// The value of a detached task from synchronous test code.
private func waitForTask<T: Sendable>(_ task: Task<T, Never>) -> T {
    let box = NIOLockedValueBox<T?>(nil)
    let done = ConditionLock(value: 0)
    Task {
        let value = await task.value
        box.withLockedValue { $0 = value }
        done.lock()
        done.unlock(withValue: 1)
    }
    done.lock(whenValue: 1)
    done.unlock()
    return box.withLockedValue { $0! }
}
