import MySQLWire
import NIOCore
import Testing

@Suite("Server handshake state machine")
struct ServerHandshakeStateMachineTests {
    static let scramble: [UInt8] = Array(1...20)
    static let capabilities: CapabilityFlags = [
        .longFlag, .connectWithDB, .protocol41, .ssl, .transactions, .secureConnection, .multiResults,
        .pluginAuth, .connectAttributes, .pluginAuthLengthEncodedClientData,
    ]

    static func machine(requireTLS: Bool = false) -> ServerHandshakeStateMachine {
        ServerHandshakeStateMachine(
            settings: .init(
                serverVersion: "5.5.5-10.11.19-MariaDB-switchyard", connectionID: 9, scramble: scramble,
                capabilities: capabilities, requireTLS: requireTLS, clientHost: "127.0.0.1"))
    }

    static func response(
        password: String, plugin: String = "mysql_native_password", database: String? = "appdb", sequenceID: UInt8 = 1,
        scramble: [UInt8] = scramble
    ) -> MySQLPacket {
        var payload = ByteBuffer()
        Packets.HandshakeResponse41(
            capabilities: capabilities, collation: 45, username: "app",
            authResponse: MySQLNativePassword.response(password: password, scramble: scramble), database: database,
            authPluginName: plugin
        ).encode(into: &payload)
        return MySQLPacket(sequenceID: sequenceID, payload: payload)
    }

    static let stored = StoredCredential.nativePassword(doubleSHA1: MySQLNativePassword.doubleSHA1(password: "pw"))

    @Test("greeting, response, credential lookup, OK with sequence id 2, and the login facts")
    func nativePasswordLogin() throws {
        var machine = Self.machine()
        guard case .send(let greeting) = machine.start() else { Issue.record("no greeting"); return }
        #expect(greeting.sequenceID == 0)
        let decoded = try Packets.HandshakeV10.decode(greeting.payload)
        #expect(decoded.scramble == Self.scramble)
        #expect(decoded.connectionID == 9)
        guard case .lookUpCredential(let user) = machine.packetReceived(Self.response(password: "pw")) else {
            Issue.record("no lookup"); return
        }
        #expect(user == "app")
        guard case .authenticated(let ok, let login) = machine.credentialLookedUp(Self.stored) else {
            Issue.record("not authenticated"); return
        }
        #expect(ok.sequenceID == 2)
        #expect(ok.payload.getInteger(at: 0, as: UInt8.self) == 0x00)
        #expect(login.database == "appdb")
        #expect(login.passwordSHA1?.count == 20)
        #expect(!login.tls)
    }

    @Test("a wrong password and an unknown user get the server's ERR 1045 wording")
    func accessDenied() {
        for credential in [Self.stored, nil] {
            var machine = Self.machine()
            _ = machine.start()
            _ = machine.packetReceived(Self.response(password: "nope"))
            guard case .failAndClose(let packet, let error) = machine.credentialLookedUp(credential) else {
                Issue.record("accepted"); return
            }
            #expect(error.errorCode == 1045)
            #expect(error.sqlState == "28000")
            #expect(error.message == "Access denied for user 'app'@'127.0.0.1' (using password: YES)")
            #expect(packet.sequenceID == 2)
        }
    }

    @Test("an account without a password (unix_socket) is refused with the server's 1698, which names none")
    func accessDeniedWithoutPassword() {
        var machine = Self.machine()
        _ = machine.start()
        _ = machine.packetReceived(Self.response(password: "nope"))
        guard case .failAndClose(_, let error) = machine.credentialLookedUp(nil, withoutPassword: true) else {
            Issue.record("accepted"); return
        }
        #expect(error.errorCode == 1698)
        #expect(error.sqlState == "28000")
        #expect(error.message == "Access denied for user 'app'@'127.0.0.1'")
    }

    @Test("a client starting with another plugin is switched to mysql_native_password")
    func authSwitch() throws {
        var machine = Self.machine()
        _ = machine.start()
        guard
            case .send(let switchRequest) = machine.packetReceived(
                Self.response(password: "", plugin: "client_ed25519"))
        else { Issue.record("no switch"); return }
        #expect(switchRequest.sequenceID == 2)
        let request = try #require(Packets.AuthSwitchRequest.decode(switchRequest.payload))
        #expect(request.pluginName == "mysql_native_password")
        #expect(request.pluginData == Self.scramble)
        let answer = MySQLPacket(
            sequenceID: 3,
            payload: ByteBuffer(bytes: MySQLNativePassword.response(password: "pw", scramble: Self.scramble)))
        guard case .lookUpCredential = machine.packetReceived(answer) else { Issue.record("no lookup"); return }
        guard case .authenticated(let ok, _) = machine.credentialLookedUp(Self.stored) else {
            Issue.record("not authenticated"); return
        }
        #expect(ok.sequenceID == 4)
    }

    @Test("SSLRequest starts TLS; the response then arrives with sequence id 2")
    func tlsUpgrade() {
        var machine = Self.machine(requireTLS: true)
        _ = machine.start()
        var request = ByteBuffer()
        Packets.HandshakeResponse41(capabilities: Self.capabilities, collation: 45, username: "", authResponse: [])
            .encodeFixedPart(into: &request)
        guard case .startTLS = machine.packetReceived(MySQLPacket(sequenceID: 1, payload: request)) else {
            Issue.record("no TLS"); return
        }
        guard case .wait = machine.tlsEstablished() else { Issue.record("no wait"); return }
        guard case .lookUpCredential = machine.packetReceived(Self.response(password: "pw", sequenceID: 2)) else {
            Issue.record("no lookup"); return
        }
        guard case .authenticated(let ok, let login) = machine.credentialLookedUp(Self.stored) else {
            Issue.record("not authenticated"); return
        }
        #expect(ok.sequenceID == 3)
        #expect(login.tls)
    }

    @Test("nextSequenceID is the id an ERR in place of the next step takes: it counts SSLRequest and auth switches")
    func nextSequenceID() {
        var plain = Self.machine()
        #expect(plain.nextSequenceID == 0)
        _ = plain.start()
        #expect(plain.nextSequenceID == 2)
        _ = plain.packetReceived(Self.response(password: "pw"))
        #expect(plain.nextSequenceID == 2)
        // An ed25519 account: the server's challenge goes to the client (2), whose answer is 3.
        _ = plain.switchPlugin("client_ed25519", challenge: Array(repeating: 7, count: 32))
        #expect(plain.nextSequenceID == 4)
        _ = plain.packetReceived(MySQLPacket(sequenceID: 3, payload: ByteBuffer(bytes: Array(repeating: 1, count: 64))))
        #expect(plain.nextSequenceID == 4)

        var tls = Self.machine()
        _ = tls.start()
        var request = ByteBuffer()
        Packets.HandshakeResponse41(capabilities: Self.capabilities, collation: 45, username: "", authResponse: [])
            .encodeFixedPart(into: &request)
        _ = tls.packetReceived(MySQLPacket(sequenceID: 1, payload: request))
        _ = tls.tlsEstablished()
        #expect(tls.nextSequenceID == 3)
        _ = tls.packetReceived(Self.response(password: "pw", sequenceID: 2))
        #expect(tls.nextSequenceID == 3)
        _ = tls.switchPlugin("client_ed25519", challenge: Array(repeating: 7, count: 32))
        #expect(tls.nextSequenceID == 5)

        // A client that started with another plugin answered the proxy's switch (3): next is 4.
        var switched = Self.machine()
        _ = switched.start()
        _ = switched.packetReceived(Self.response(password: "", plugin: "client_ed25519"))
        #expect(switched.nextSequenceID == 4)
        _ = switched.packetReceived(
            MySQLPacket(sequenceID: 3, payload: ByteBuffer(bytes: Array(repeating: 1, count: 20))))
        #expect(switched.nextSequenceID == 4)
        guard case .failAndClose(let packet, _) = switched.credentialLookedUp(nil) else {
            Issue.record("accepted"); return
        }
        #expect(packet.sequenceID == 4)
        #expect(switched.nextSequenceID == 5)
    }

    @Test("require_tls refuses a plaintext login with a clear error")
    func requireTLS() {
        var machine = Self.machine(requireTLS: true)
        _ = machine.start()
        guard case .failAndClose(_, let error) = machine.packetReceived(Self.response(password: "pw")) else {
            Issue.record("plaintext accepted"); return
        }
        #expect(error.errorCode == 3159)
        #expect(error.message.contains("insecure transport"))
    }

    @Test("garbage, out-of-order packets and packets after the end close with ERR 1043, never a trap")
    func badInput() {
        let inputs: [MySQLPacket] = [
            MySQLPacket(sequenceID: 1, payload: ByteBuffer(bytes: [1, 2, 3])),
            MySQLPacket(sequenceID: 1, payload: ByteBuffer()),
            Self.response(password: "pw", sequenceID: 5),
        ]
        for input in inputs {
            var machine = Self.machine()
            _ = machine.start()
            guard case .failAndClose(_, let error) = machine.packetReceived(input) else {
                Issue.record("accepted \(input)"); continue
            }
            #expect(error.errorCode == 1043)
            #expect(error.sqlState == "08S01")
        }
        var finished = Self.machine()
        _ = finished.start()
        _ = finished.packetReceived(Self.response(password: "pw"))
        _ = finished.credentialLookedUp(Self.stored)
        guard case .failAndClose = finished.packetReceived(Self.response(password: "pw")) else {
            Issue.record("accepted a packet after the handshake"); return
        }
    }
}
