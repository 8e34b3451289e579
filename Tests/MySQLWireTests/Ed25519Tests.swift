import Crypto
import MySQLWire
import NIOCore
import Testing

@Suite("client_ed25519 through the proxy's machines")
struct Ed25519Tests {
    static let key = Curve25519.Signing.PrivateKey()
    static var stored: StoredCredential { .ed25519(publicKey: Array(key.publicKey.rawRepresentation)) }

    @Test(
        "The server machine switches the client to client_ed25519 with the given challenge and verifies the signature")
    func serverMachine() throws {
        for forged in [false, true] {
            var machine = ServerHandshakeStateMachine(
                settings: .init(
                    serverVersion: "5.5.5-10.11.19-MariaDB", connectionID: 3, scramble: Array(1...20),
                    capabilities: ServerHandshakeStateMachineTests.capabilities, clientHost: "127.0.0.1"))
            _ = machine.start()
            guard
                case .lookUpCredential = machine.packetReceived(
                    ServerHandshakeStateMachineTests.response(password: "x"))
            else { Issue.record("no lookup"); return }
            #expect(!machine.verifies(Self.stored))  // a native-password answer never satisfies ed25519
            let challenge = Array(UInt8(100)..<UInt8(132))
            guard case .send(let request) = machine.switchPlugin("client_ed25519", challenge: challenge) else {
                Issue.record("no switch"); return
            }
            #expect(request.sequenceID == 2)
            #expect(Packets.AuthSwitchRequest.decode(request.payload)?.pluginData == challenge)
            var signature = Array(try Self.key.signature(for: challenge))
            if forged { signature[0] ^= 1 }
            guard
                case .lookUpCredential = machine.packetReceived(
                    MySQLPacket(sequenceID: 3, payload: ByteBuffer(bytes: signature)))
            else { Issue.record("no second lookup"); return }
            switch machine.credentialLookedUp(Self.stored) {
            case .authenticated(let ok, let login):
                #expect(!forged)
                #expect(ok.sequenceID == 4)
                #expect(login.pluginAnswer == signature)
                #expect(login.passwordSHA1 == nil)
            case .failAndClose(_, let error):
                #expect(forged)
                #expect(error.errorCode == 1045)
            default:
                Issue.record("unexpected action")
            }
        }
    }

    @Test("The stored form is the base64 public key MariaDB keeps in authentication_string")
    func storedForm() {
        // 43 characters of base64 without padding, as in mysql.user (the integration tests use real ones).
        let text = "ZIgUREUg5PVgQ6LskhXmO+eZLS0nC8be6HPjYWR4YJY"
        guard case .ed25519(let key)? = MariaDBEd25519.storedCredential(fromAuthenticationString: text) else {
            Issue.record("not parsed"); return
        }
        #expect(key.count == 32)
        #expect(MariaDBEd25519.storedCredential(fromAuthenticationString: "short") == nil)
    }

    @Test("The client machine hands a client_ed25519 challenge to the session when it has no password hash")
    func clientMachine() throws {
        var client = ClientHandshakeStateMachine(
            settings: .init(username: "app", passwordSHA1: nil, capabilities: [.protocol41], tls: .disabled))
        var greeting = ByteBuffer()
        Packets.HandshakeV10(
            serverVersion: "5.5.5-10.11.19-MariaDB", connectionID: 1, scramble: Array(1...20),
            capabilities: ServerHandshakeStateMachineTests.capabilities, collation: 45, status: [.autocommit],
            authPluginName: "mysql_native_password"
        ).encode(into: &greeting)
        _ = client.packetReceived(MySQLPacket(sequenceID: 0, payload: greeting))
        var switchPayload = ByteBuffer()
        Packets.AuthSwitchRequest(pluginName: "client_ed25519", pluginData: Array(repeating: 7, count: 32))
            .encode(into: &switchPayload)
        guard
            case .pluginChallenge("client_ed25519", let challenge) = client.packetReceived(
                MySQLPacket(sequenceID: 2, payload: switchPayload))
        else { Issue.record("no challenge"); return }
        #expect(challenge.count == 32)
        guard case .send(let answer) = client.pluginAnswered(Array(repeating: 9, count: 64)) else {
            Issue.record("no answer"); return
        }
        #expect(answer.sequenceID == 3)
        #expect(answer.payload.readableBytes == 64)
    }
}
