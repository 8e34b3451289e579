import MySQLWire
import NIOCore
import Testing

@Suite("Client handshake state machine")
struct ClientHandshakeStateMachineTests {
    static let password = "pw"
    static let passwordSHA1 = try! #require(
        MySQLNativePassword.recoverPasswordSHA1(
            response: MySQLNativePassword.response(password: password, scramble: Array(1...20)),
            scramble: Array(1...20), doubleSHA1: MySQLNativePassword.doubleSHA1(password: password)))

    static func server(offerTLS: Bool = true) -> ServerHandshakeStateMachine {
        var capabilities: CapabilityFlags = [
            .longFlag, .connectWithDB, .protocol41, .transactions, .secureConnection, .multiResults, .pluginAuth,
            .connectAttributes, .pluginAuthLengthEncodedClientData,
        ]
        if offerTLS { capabilities.insert(.ssl) }
        return ServerHandshakeStateMachine(
            settings: .init(
                serverVersion: "10.11.19-MariaDB", connectionID: 77, scramble: Array(101...120),
                capabilities: capabilities, clientHost: "127.0.0.1"))
    }

    static func client(tls: ClientHandshakeStateMachine.TLSPolicy, sha1: [UInt8]? = passwordSHA1)
        -> ClientHandshakeStateMachine
    {
        ClientHandshakeStateMachine(
            settings: .init(
                username: "app", passwordSHA1: sha1, database: "appdb",
                capabilities: [.protocol41, .transactions, .multiResults], tls: tls,
                attributes: [("_client_name", "switchyard")]))
    }

    static let stored = StoredCredential.nativePassword(doubleSHA1: MySQLNativePassword.doubleSHA1(password: password))

    @Test("our client logs in to our server with only SHA1(password), over a TLS upgrade")
    func machineToMachineTLS() throws {
        var server = Self.server()
        var client = Self.client(tls: .required)
        guard case .send(let greeting) = server.start() else { Issue.record("no greeting"); return }
        guard case .sendAndStartTLS(let sslRequest) = client.packetReceived(greeting) else {
            Issue.record("client did not ask for TLS"); return
        }
        guard case .startTLS = server.packetReceived(sslRequest) else {
            Issue.record("server did not start TLS"); return
        }
        _ = server.tlsEstablished()
        guard case .send(let response) = client.tlsEstablished() else { Issue.record("no response"); return }
        #expect(response.sequenceID == 2)
        guard case .lookUpCredential(let user) = server.packetReceived(response) else {
            Issue.record("no lookup"); return
        }
        #expect(user == "app")
        guard case .authenticated(let ok, let login) = server.credentialLookedUp(Self.stored) else {
            Issue.record("server refused"); return
        }
        #expect(login.database == "appdb")
        #expect(login.attributes["_client_name"] == "switchyard")
        #expect(login.tls)
        guard case .authenticated(let session) = client.packetReceived(ok) else {
            Issue.record("client failed"); return
        }
        #expect(session.connectionID == 77)
    }

    @Test("TLS required but not offered fails instead of falling back to plaintext")
    func noSilentPlaintext() {
        var server = Self.server(offerTLS: false)
        var client = Self.client(tls: .required)
        guard case .send(let greeting) = server.start() else { return }
        guard case .failed(.tlsNotOffered) = client.packetReceived(greeting) else {
            Issue.record("client went on without TLS"); return
        }
    }

    @Test("a wrong password comes back as the server's ERR 1045")
    func wrongPassword() throws {
        var server = Self.server()
        var client = Self.client(tls: .disabled, sha1: Array(repeating: 1, count: 20))
        guard case .send(let greeting) = server.start(), case .send(let response) = client.packetReceived(greeting)
        else { Issue.record("no exchange"); return }
        _ = server.packetReceived(response)
        guard case .failAndClose(let error, _) = server.credentialLookedUp(Self.stored) else {
            Issue.record("accepted"); return
        }
        guard case .failed(.server(let packet)) = client.packetReceived(error) else {
            Issue.record("no failure"); return
        }
        #expect(packet.errorCode == 1045)
    }

    @Test("an auth switch to mysql_native_password is answered; other plugins fail clearly")
    func authSwitch() {
        var server = Self.server()
        var client = Self.client(tls: .disabled)
        guard case .send(let greeting) = server.start() else { return }
        _ = client.packetReceived(greeting)
        var switchPayload = ByteBuffer()
        Packets.AuthSwitchRequest(pluginName: "mysql_native_password", pluginData: Array(201...220))
            .encode(into: &switchPayload)
        guard case .send(let answer) = client.packetReceived(MySQLPacket(sequenceID: 2, payload: switchPayload)) else {
            Issue.record("no answer"); return
        }
        #expect(answer.sequenceID == 3)
        #expect(
            Array(answer.payload.readableBytesView)
                == MySQLNativePassword.response(password: Self.password, scramble: Array(201...220)))

        var other = Self.client(tls: .disabled)
        _ = other.packetReceived(greeting)
        var ed25519 = ByteBuffer()
        Packets.AuthSwitchRequest(pluginName: "client_ed25519", pluginData: [1, 2]).encode(into: &ed25519)
        guard
            case .failed(.unsupportedPlugin("client_ed25519")) = other.packetReceived(
                MySQLPacket(sequenceID: 2, payload: ed25519))
        else { Issue.record("did not refuse"); return }
    }
}
