import NIOCore

/// The proxy's side of a backend login, as a pure state machine: the proxy logs in as the client's
/// user with SHA1(password) (recovered from the client's own login), never the plaintext.
///
/// greeting → [SSLRequest → TLS] → HandshakeResponse41 → [AuthSwitchRequest → answer] → OK or ERR.
/// TLS is never silently skipped: when `tls` is required and the server does not offer it, the login
/// fails.
public struct ClientHandshakeStateMachine: Sendable {
    public enum TLSPolicy: Sendable, Hashable {
        /// Plaintext; must be configured explicitly.
        case disabled
        /// Upgrade to TLS, or fail.
        case required
    }

    public struct Settings: Sendable {
        public var username: String
        /// SHA1(password); nil for an account without a password.
        public var passwordSHA1: [UInt8]?
        public var database: String?
        public var capabilities: CapabilityFlags
        public var collation: UInt8
        public var tls: TLSPolicy
        public var attributes: [(String, String)]

        public init(
            username: String, passwordSHA1: [UInt8]?, database: String? = nil, capabilities: CapabilityFlags,
            collation: UInt8 = 45, tls: TLSPolicy, attributes: [(String, String)] = []
        ) {
            self.username = username
            self.passwordSHA1 = passwordSHA1
            self.database = database
            self.capabilities = capabilities
            self.collation = collation
            self.tls = tls
            self.attributes = attributes
        }
    }

    /// What the backend session was established with.
    public struct Session: Hashable, Sendable {
        public var connectionID: UInt32
        public var serverVersion: String
        public var capabilities: CapabilityFlags
        public var status: StatusFlags
        /// The server's greeting scramble (`COM_CHANGE_USER` answers it again).
        public var scramble: [UInt8]
    }

    public enum Failure: Hashable, Sendable {
        /// The server refused the login (for example 1045) or sent an error.
        case server(Packets.ErrorPacket)
        /// TLS was required and the server does not offer it.
        case tlsNotOffered
        /// The server asked for an authentication plugin the proxy cannot answer.
        case unsupportedPlugin(String)
        /// Malformed or unexpected bytes from the server.
        case protocolViolation(String)
    }

    public enum Action: Sendable {
        case send(MySQLPacket)
        /// Send the SSLRequest, then insert the TLS client handler and call `tlsEstablished()`.
        case sendAndStartTLS(MySQLPacket)
        case authenticated(Session)
        case failed(Failure)
        /// The server wants an answer from a plugin only the client can give (`client_ed25519`): pass
        /// `challenge` to the client, then call `pluginAnswered(_:)` with its answer.
        case pluginChallenge(plugin: String, challenge: [UInt8])
    }

    private enum State: Sendable {
        case awaitingGreeting
        case tlsStarting(Packets.HandshakeV10, shared: CapabilityFlags)
        case awaitingResult(Packets.HandshakeV10, shared: CapabilityFlags, switched: Bool)
        case awaitingPluginAnswer(Packets.HandshakeV10, shared: CapabilityFlags, nextSequenceID: UInt8)
        case done
    }

    public let settings: Settings
    private var state: State = .awaitingGreeting

    public init(settings: Settings) {
        self.settings = settings
    }

    public mutating func packetReceived(_ packet: MySQLPacket) -> Action {
        switch state {
        case .awaitingGreeting:
            if packet.payload.getInteger(at: packet.payload.readerIndex, as: UInt8.self) == 0xFF {
                return fail(errorFrom(packet, capabilities: [.protocol41]))
            }
            let greeting: Packets.HandshakeV10
            do { greeting = try Packets.HandshakeV10.decode(packet.payload) } catch {
                return fail(.protocolViolation("bad greeting: \(error)"))
            }
            var wanted = settings.capabilities.union([.protocol41, .secureConnection, .pluginAuth])
            if settings.database != nil { wanted.insert(.connectWithDB) }
            if !settings.attributes.isEmpty { wanted.insert(.connectAttributes) }
            wanted.remove(.ssl)
            if settings.tls == .required {
                guard greeting.capabilities.contains(.ssl) else { return fail(.tlsNotOffered) }
                wanted.insert(.ssl)
            }
            let shared = wanted.negotiated(with: greeting.capabilities)
            guard shared.contains(.protocol41) else { return fail(.protocolViolation("server lacks protocol 4.1")) }
            if settings.tls == .required {
                state = .tlsStarting(greeting, shared: shared)
                var payload = ByteBuffer()
                response(greeting, shared: shared).encodeFixedPart(into: &payload)
                return .sendAndStartTLS(MySQLPacket(sequenceID: 1, payload: payload))
            }
            state = .awaitingResult(greeting, shared: shared, switched: false)
            return .send(responsePacket(greeting, shared: shared, sequenceID: 1))

        case .awaitingResult(let greeting, let shared, let switched):
            let header = packet.payload.getInteger(at: packet.payload.readerIndex, as: UInt8.self)
            switch header {
            case 0x00:
                let ok: Packets.OKPacket
                do { ok = try Packets.OKPacket.decode(packet.payload, capabilities: shared) } catch {
                    return fail(.protocolViolation("bad OK packet"))
                }
                state = .done
                return .authenticated(
                    Session(
                        connectionID: greeting.connectionID, serverVersion: greeting.serverVersion,
                        capabilities: shared, status: ok.status, scramble: greeting.scramble))
            case 0xFF:
                return fail(errorFrom(packet, capabilities: shared))
            case 0xFE where !switched:
                guard let request = Packets.AuthSwitchRequest.decode(packet.payload) else {
                    return fail(.protocolViolation("bad auth switch request"))
                }
                if request.pluginName == MariaDBEd25519().name && settings.passwordSHA1 == nil {
                    state = .awaitingPluginAnswer(greeting, shared: shared, nextSequenceID: packet.sequenceID &+ 1)
                    return .pluginChallenge(plugin: request.pluginName, challenge: request.pluginData)
                }
                guard request.pluginName == MySQLNativePassword().name else {
                    return fail(.unsupportedPlugin(request.pluginName))
                }
                state = .awaitingResult(greeting, shared: shared, switched: true)
                let answer =
                    settings.passwordSHA1.map {
                        MySQLNativePassword.response(passwordSHA1: $0, scramble: request.pluginData)
                    } ?? []
                return .send(MySQLPacket(sequenceID: packet.sequenceID &+ 1, payload: ByteBuffer(bytes: answer)))
            default:
                return fail(.protocolViolation("unexpected packet 0x\(String(header ?? 0, radix: 16)) during login"))
            }

        case .tlsStarting, .awaitingPluginAnswer, .done:
            return fail(.protocolViolation("unexpected packet during login"))
        }
    }

    /// The client's answer to a `.pluginChallenge`.
    public mutating func pluginAnswered(_ answer: [UInt8]) -> Action {
        guard case .awaitingPluginAnswer(let greeting, let shared, let sequenceID) = state else {
            return fail(.protocolViolation("plugin answer arrived unexpectedly"))
        }
        state = .awaitingResult(greeting, shared: shared, switched: true)
        return .send(MySQLPacket(sequenceID: sequenceID, payload: ByteBuffer(bytes: answer)))
    }

    /// The TLS handshake with the backend finished: send the full response (sequence id 2).
    public mutating func tlsEstablished() -> Action {
        guard case .tlsStarting(let greeting, let shared) = state else {
            return fail(.protocolViolation("TLS established unexpectedly"))
        }
        state = .awaitingResult(greeting, shared: shared, switched: false)
        return .send(responsePacket(greeting, shared: shared, sequenceID: 2))
    }

    private func response(_ greeting: Packets.HandshakeV10, shared: CapabilityFlags) -> Packets.HandshakeResponse41 {
        let answer =
            settings.passwordSHA1.map {
                MySQLNativePassword.response(passwordSHA1: $0, scramble: greeting.scramble)
            } ?? []
        return Packets.HandshakeResponse41(
            capabilities: shared, collation: settings.collation, username: settings.username, authResponse: answer,
            database: settings.database, authPluginName: MySQLNativePassword().name, attributes: settings.attributes)
    }

    private func responsePacket(_ greeting: Packets.HandshakeV10, shared: CapabilityFlags, sequenceID: UInt8)
        -> MySQLPacket
    {
        var payload = ByteBuffer()
        response(greeting, shared: shared).encode(into: &payload)
        return MySQLPacket(sequenceID: sequenceID, payload: payload)
    }

    private func errorFrom(_ packet: MySQLPacket, capabilities: CapabilityFlags) -> Failure {
        do { return .server(try Packets.ErrorPacket.decode(packet.payload, capabilities: capabilities)) } catch {
            return .protocolViolation("bad ERR packet")
        }
    }

    private mutating func fail(_ failure: Failure) -> Action {
        state = .done
        return .failed(failure)
    }
}
