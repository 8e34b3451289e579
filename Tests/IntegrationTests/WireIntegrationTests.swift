import Foundation
import MySQLWire
import NIOCore
import Sandbox
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension IntegrationTests {
    @Test("MySQLWire decodes a real MariaDB 10.11 greeting: version, capabilities, TLS offered, native password")
    func realGreeting() async throws {
        try await ClusterFixture.with(servers: 1) { cluster in
            let connection = try RawConnection(port: cluster.instance("s1").port)
            let greeting: MySQLPacket? = try connection.receive()
            let packet = try #require(greeting)
            #expect(packet.sequenceID == 0)
            let handshake = try Packets.HandshakeV10.decode(packet.payload)
            #expect(handshake.serverVersion.contains("MariaDB"))
            #expect(handshake.capabilities.isSuperset(of: [.protocol41, .ssl, .pluginAuth, .secureConnection]))
            #expect(handshake.capabilities.contains(.mariaDBStatementBulkOperations))
            #expect(handshake.scramble.count == 20)
            #expect(handshake.authPluginName == "mysql_native_password")
            #expect(handshake.connectionID > 0)
        }
    }

    @Test("MySQLWire logs in to a real MariaDB with mysql_native_password; a wrong password gets ERR 1045")
    func realNativePasswordLogin() async throws {
        try await ClusterFixture.with(servers: 1) { cluster in
            try await cluster.rootSQL("s1", "CREATE USER 'plain'@'127.0.0.1' IDENTIFIED BY 'pw-1'")
            let stored = try await cluster.rootSQL(
                "s1", "SELECT authentication_string FROM mysql.user WHERE user = 'plain'"
            ).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(
                MySQLNativePassword.storedCredential(fromAuthenticationString: stored)
                    == .nativePassword(doubleSHA1: MySQLNativePassword.doubleSHA1(password: "pw-1")))
            let port = cluster.instance("s1").port
            for (password, succeeds) in [("pw-1", true), ("wrong", false)] {
                let connection = try RawConnection(port: port)
                let greeting = try Packets.HandshakeV10.decode(try connection.receive().payload)
                let capabilities = greeting.capabilities.intersection([
                    .longPassword, .protocol41, .secureConnection, .pluginAuth, .transactions,
                    .pluginAuthLengthEncodedClientData,
                ])
                var payload = ByteBuffer()
                Packets.HandshakeResponse41(
                    capabilities: capabilities, collation: 45, username: "plain",
                    authResponse: MySQLNativePassword.response(password: password, scramble: greeting.scramble),
                    authPluginName: "mysql_native_password"
                ).encode(into: &payload)
                try connection.send(MySQLPacket(sequenceID: 1, payload: payload))
                let reply = try connection.receive()
                #expect(reply.sequenceID == 2)
                if succeeds {
                    let ok = try Packets.OKPacket.decode(reply.payload, capabilities: capabilities)
                    #expect(ok.status.contains(.autocommit))
                } else {
                    let error = try Packets.ErrorPacket.decode(reply.payload, capabilities: capabilities)
                    #expect(error.errorCode == 1045)
                    #expect(error.sqlState == "28000")
                    #expect(error.message.contains("Access denied for user 'plain'"))
                }
            }
        }
    }
}

extension IntegrationTests {
    @Test("ClientHandshakeStateMachine logs in to a real MariaDB as a user from SHA1(password) alone")
    func clientMachineAgainstRealServer() async throws {
        try await ClusterFixture.with(servers: 1) { cluster in
            try await cluster.rootSQL(
                "s1",
                "CREATE USER 'plain'@'127.0.0.1' IDENTIFIED BY 'pw-2'; GRANT SELECT ON appdb.* TO 'plain'@'127.0.0.1'")
            let scramble: [UInt8] = Array(1...20)
            let sha1 = try #require(
                MySQLNativePassword.recoverPasswordSHA1(
                    response: MySQLNativePassword.response(password: "pw-2", scramble: scramble), scramble: scramble,
                    doubleSHA1: MySQLNativePassword.doubleSHA1(password: "pw-2")))
            var machine = ClientHandshakeStateMachine(
                settings: .init(
                    username: "plain", passwordSHA1: sha1, database: "appdb",
                    capabilities: [.protocol41, .transactions], tls: .disabled))
            let connection = try RawConnection(port: cluster.instance("s1").port)
            var action = machine.packetReceived(try connection.receive())
            while true {
                switch action {
                case .send(let packet):
                    try connection.send(packet)
                    action = machine.packetReceived(try connection.receive())
                    continue
                case .authenticated(let session):
                    #expect(session.serverVersion.contains("MariaDB"))
                    #expect(session.capabilities.contains(.connectWithDB))
                case .sendAndStartTLS, .failed, .pluginChallenge:
                    Issue.record("login failed: \(action)")
                }
                break
            }
        }
    }
}

extension IntegrationTests {
    @Test("ResponseTracker finds the end of real MariaDB responses: multi-results, prepare, errors; EOF on or off")
    func responseTrackerAgainstRealServer() async throws {
        try await ClusterFixture.with(servers: 1) { cluster in
            try await cluster.rootSQL(
                "s1",
                "CREATE USER 'plain'@'127.0.0.1' IDENTIFIED BY 'pw-3'; GRANT ALL ON appdb.* TO 'plain'@'127.0.0.1'")
            let scramble: [UInt8] = Array(1...20)
            let sha1 = try #require(
                MySQLNativePassword.recoverPasswordSHA1(
                    response: MySQLNativePassword.response(password: "pw-3", scramble: scramble), scramble: scramble,
                    doubleSHA1: MySQLNativePassword.doubleSHA1(password: "pw-3")))
            for deprecateEOF in [false, true] {
                var capabilities: CapabilityFlags = [
                    .protocol41, .transactions, .multiStatements, .multiResults, .psMultiResults,
                ]
                if deprecateEOF { capabilities.insert(.deprecateEOF) }
                var login = ClientHandshakeStateMachine(
                    settings: .init(
                        username: "plain", passwordSHA1: sha1, database: "appdb", capabilities: capabilities,
                        tls: .disabled))
                let connection = try RawConnection(port: cluster.instance("s1").port)
                var action = login.packetReceived(try connection.receive())
                var session: ClientHandshakeStateMachine.Session?
                while session == nil {
                    switch action {
                    case .send(let packet):
                        try connection.send(packet)
                        action = login.packetReceived(try connection.receive())
                    case .authenticated(let established):
                        session = established
                    case .sendAndStartTLS, .failed, .pluginChallenge:
                        Issue.record("login failed: \(action)")
                        return
                    }
                }
                let shared = try #require(session).capabilities
                #expect(shared.contains(.deprecateEOF) == deprecateEOF)

                /// Sends one command and feeds its response to a tracker; returns the packet count and outcome.
                func exchange(_ command: Command, _ body: [UInt8]) throws -> (Int, ResponseTracker.Outcome) {
                    try connection.send(
                        MySQLPacket(sequenceID: 0, payload: ByteBuffer(bytes: [command.rawValue] + body)))
                    var tracker = ResponseTracker(command: command, capabilities: shared)
                    var count = 0
                    while true {
                        let packet = try connection.receive()
                        count += 1
                        let outcome = tracker.serverPacket(packet.payload)
                        if outcome != .inProgress { return (count, outcome) }
                    }
                }
                let multi = try exchange(.query, Array("SELECT 1; SELECT 'a', 'b' UNION SELECT 'c', 'd'; DO 1".utf8))
                guard case .finished = multi.1 else { Issue.record("multi: \(multi)"); continue }
                #expect(multi.0 == (deprecateEOF ? 4 + 6 + 1 : 5 + 7 + 1))
                let begin = try exchange(.query, Array("BEGIN".utf8))
                guard case .finished(let flags?) = begin.1 else { Issue.record("begin: \(begin)"); continue }
                #expect(flags.contains(.inTransaction))
                let prepare = try exchange(.statementPrepare, Array("SELECT ? + 1, ?, NOW()".utf8))
                #expect(prepare.1 == .finished(nil))
                #expect(prepare.0 == 1 + 2 + 3 + (deprecateEOF ? 0 : 2))
                let error = try exchange(.query, Array("SELEC nonsense".utf8))
                #expect(error == (1, .finished(nil)))
                // Still aligned: a ping gets exactly its OK.
                let ping = try exchange(.ping, [])
                #expect(ping.0 == 1)
            }
        }
    }
}

/// A blocking TCP connection speaking MySQL packets, for tests against real servers.
final class RawConnection {
    let fd: Int32
    var decoder = MySQLPacketDecoder()
    var input = ByteBuffer()

    init(port: Int) throws {
        fd = try connectLoopback(port: port)
    }

    deinit { close(fd) }

    func receive() throws -> MySQLPacket {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            if let packet = try decoder.decode(buffer: &input) { return packet }
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { throw Timeout(description: "connection closed or timed out") }
            input.writeBytes(chunk[0..<count])
        }
    }

    /// Everything the peer sends until it closes the connection (`closed`), or until a read times out.
    func readUntilClosed() -> (bytes: [UInt8], closed: Bool) {
        var bytes = Array(input.readableBytesView)
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count == 0 || (count < 0 && errno == ECONNRESET) { return (bytes, true) }
            if count < 0 { return (bytes, false) }
            bytes += chunk[0..<count]
        }
    }

    func send(_ packet: MySQLPacket) throws {
        var out = ByteBuffer()
        MySQLPacketEncoder.write(packet, into: &out)
        let bytes = Array(out.readableBytesView)
        let sent = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
        guard sent == bytes.count else { throw Timeout(description: "short send") }
    }
}
