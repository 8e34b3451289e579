import NIOCore

/// The proxy's side of the connection phase, as a pure state machine: the channel handler feeds it
/// packets and events and carries out the actions it returns. No I/O, no clocks, no randomness inside
/// (the scramble and connection id are given).
///
/// greeting → [SSLRequest → TLS] → HandshakeResponse41 → [AuthSwitchRequest → response] →
/// credential lookup (by the handler, from the account store) → OK, or ERR 1045 and close.
public struct ServerHandshakeStateMachine: Sendable {
    public struct Settings: Sendable {
        public var serverVersion: String
        public var connectionID: UInt32
        /// 20 random bytes, one scramble per connection.
        public var scramble: [UInt8]
        public var capabilities: CapabilityFlags
        public var collation: UInt8
        /// Refuse logins that did not first upgrade to TLS.
        public var requireTLS: Bool
        /// The client's address as the server words it in errors (`'user'@'host'`).
        public var clientHost: String
        public var maxPacketSize: Int

        public init(
            serverVersion: String, connectionID: UInt32, scramble: [UInt8], capabilities: CapabilityFlags,
            collation: UInt8 = 45, requireTLS: Bool = false, clientHost: String, maxPacketSize: Int = 1 << 24
        ) {
            self.serverVersion = serverVersion
            self.connectionID = connectionID
            self.scramble = scramble
            self.capabilities = capabilities
            self.collation = collation
            self.requireTLS = requireTLS
            self.clientHost = clientHost
            self.maxPacketSize = maxPacketSize
        }
    }

    /// What the client asked for, once authenticated.
    public struct Login: Hashable, Sendable {
        public var username: String
        public var database: String?
        public var capabilities: CapabilityFlags
        public var collation: UInt8
        public var attributes: [String: String]
        /// SHA1(password) for `mysql_native_password` logins: lets the proxy log in to backends as this user.
        public var passwordSHA1: [UInt8]?
        /// For plugins the proxy cannot answer itself (`client_ed25519`): the client's verified answer to
        /// the server challenge the proxy passed on, for the proxy to hand to that server.
        public var pluginAnswer: [UInt8]?
        public var tls: Bool
    }

    public enum Action: Sendable {
        case send(MySQLPacket)
        /// Insert the TLS server handler first in the pipeline; then call `tlsEstablished()`.
        case startTLS
        /// Look up the account's stored credential, then call `credentialLookedUp(_:)`.
        case lookUpCredential(username: String)
        /// Send the OK packet; the session enters the command phase with `login`.
        case authenticated(MySQLPacket, Login)
        /// Send the ERR packet, then close the connection.
        case failAndClose(MySQLPacket, Packets.ErrorPacket)
        /// Nothing to do until the next packet.
        case wait
    }

    private enum State: Sendable {
        case initial
        case greetingSent(tls: Bool)
        case tlsStarting
        case awaitingSwitchResponse(Packets.HandshakeResponse41, tls: Bool, nextSequenceID: UInt8)
        case awaitingCredential(
            Packets.HandshakeResponse41, response: [UInt8], tls: Bool, nextSequenceID: UInt8, challenge: [UInt8],
            plugin: String)
        case awaitingPluginAnswer(
            Packets.HandshakeResponse41, tls: Bool, nextSequenceID: UInt8, challenge: [UInt8], plugin: String)
        /// The login ended (OK or ERR sent); `nextSequenceID` follows that last packet.
        case done(nextSequenceID: UInt8)
    }

    public let settings: Settings
    private var state: State = .initial
    private let method = MySQLNativePassword()

    public init(settings: Settings) {
        self.settings = settings
    }

    /// The greeting to send first.
    public mutating func start() -> Action {
        guard case .initial = state else { return protocolError("handshake started twice", sequenceID: 0) }
        state = .greetingSent(tls: false)
        let greeting = Packets.HandshakeV10(
            serverVersion: settings.serverVersion, connectionID: settings.connectionID, scramble: settings.scramble,
            capabilities: settings.capabilities, collation: settings.collation, status: [.autocommit],
            authPluginName: method.name)
        var payload = ByteBuffer()
        greeting.encode(into: &payload)
        return .send(MySQLPacket(sequenceID: 0, payload: payload))
    }

    public mutating func packetReceived(_ packet: MySQLPacket) -> Action {
        switch state {
        case .greetingSent(let tls):
            let expected: UInt8 = tls ? 2 : 1
            guard packet.sequenceID == expected else {
                return protocolError("packet out of order", sequenceID: packet.sequenceID &+ 1)
            }
            if !tls && Packets.HandshakeResponse41.isSSLRequest(packet.payload) {
                guard settings.capabilities.contains(.ssl) else {
                    return protocolError("TLS is not offered", sequenceID: packet.sequenceID &+ 1)
                }
                state = .tlsStarting
                return .startTLS
            }
            let response: Packets.HandshakeResponse41
            do {
                response = try Packets.HandshakeResponse41.decode(
                    packet.payload, serverCapabilities: settings.capabilities)
            } catch {
                return protocolError("bad handshake", sequenceID: packet.sequenceID &+ 1)
            }
            if settings.requireTLS && !tls {
                return fail(
                    errno: 3159, sqlState: "08004",
                    message: "Connections using insecure transport are prohibited while --require_secure_transport=ON.",
                    sequenceID: packet.sequenceID &+ 1)
            }
            let shared = response.capabilities.negotiated(with: settings.capabilities)
            if shared.contains(.pluginAuth), let plugin = response.authPluginName, plugin != method.name {
                state = .awaitingSwitchResponse(response, tls: tls, nextSequenceID: packet.sequenceID &+ 2)
                var payload = ByteBuffer()
                Packets.AuthSwitchRequest(pluginName: method.name, pluginData: settings.scramble).encode(into: &payload)
                return .send(MySQLPacket(sequenceID: packet.sequenceID &+ 1, payload: payload))
            }
            state = .awaitingCredential(
                response, response: response.authResponse, tls: tls, nextSequenceID: packet.sequenceID &+ 1,
                challenge: settings.scramble, plugin: method.name)
            return .lookUpCredential(username: response.username)

        case .awaitingSwitchResponse(let response, let tls, let expected):
            guard packet.sequenceID == expected else {
                return protocolError("packet out of order", sequenceID: packet.sequenceID &+ 1)
            }
            state = .awaitingCredential(
                response, response: Array(packet.payload.readableBytesView), tls: tls,
                nextSequenceID: packet.sequenceID &+ 1, challenge: settings.scramble, plugin: method.name)
            return .lookUpCredential(username: response.username)

        case .awaitingPluginAnswer(let response, let tls, let expected, let challenge, let plugin):
            guard packet.sequenceID == expected else {
                return protocolError("packet out of order", sequenceID: packet.sequenceID &+ 1)
            }
            state = .awaitingCredential(
                response, response: Array(packet.payload.readableBytesView), tls: tls,
                nextSequenceID: packet.sequenceID &+ 1, challenge: challenge, plugin: plugin)
            return .lookUpCredential(username: response.username)

        case .initial, .tlsStarting, .awaitingCredential, .done:
            return protocolError("unexpected packet during the handshake", sequenceID: packet.sequenceID &+ 1)
        }
    }

    /// The TLS handshake finished; the client now sends its handshake response (sequence id 2).
    public mutating func tlsEstablished() -> Action {
        guard case .tlsStarting = state else { return protocolError("TLS started unexpectedly", sequenceID: 2) }
        state = .greetingSent(tls: true)
        return .wait
    }

    /// The sequence id the proxy's next packet to the client takes if it answers now: an ERR sent in place
    /// of the login's next step (a backend login that failed, a timeout, a throttled user) must carry it.
    /// It counts the SSLRequest and every auth switch so far: 2 after a plain response, 3 over TLS, two
    /// more per AuthSwitchRequest the client answered (or is about to answer).
    public var nextSequenceID: UInt8 {
        switch state {
        case .initial: 0
        case .greetingSent(let tls): tls ? 3 : 2
        case .tlsStarting: 2
        case .awaitingSwitchResponse(_, _, let expected): expected &+ 1
        case .awaitingCredential(_, _, _, let next, _, _): next
        case .awaitingPluginAnswer(_, _, let expected, _, _): expected &+ 1
        case .done(let next): next
        }
    }

    /// The client's handshake response while its credential is being looked up.
    public var pendingResponse: Packets.HandshakeResponse41? {
        guard case .awaitingCredential(let response, _, _, _, _, _) = state else { return nil }
        return response
    }

    /// The plugin whose answer the client gave last (`mysql_native_password` until `switchPlugin`).
    public var answeredPlugin: String? {
        guard case .awaitingCredential(_, _, _, _, _, let plugin) = state else { return nil }
        return plugin
    }

    /// The account needs another plugin than the one the client answered with: ask the client to answer
    /// `challenge` with `plugin` (an AuthSwitchRequest). Its answer comes back as `.lookUpCredential`.
    public mutating func switchPlugin(_ plugin: String, challenge: [UInt8]) -> Action {
        guard case .awaitingCredential(let response, _, let tls, let sequenceID, _, _) = state else {
            return protocolError("plugin switch arrived unexpectedly", sequenceID: 0)
        }
        state = .awaitingPluginAnswer(
            response, tls: tls, nextSequenceID: sequenceID &+ 1, challenge: challenge, plugin: plugin)
        var payload = ByteBuffer()
        Packets.AuthSwitchRequest(pluginName: plugin, pluginData: challenge).encode(into: &payload)
        return .send(MySQLPacket(sequenceID: sequenceID, payload: payload))
    }

    /// Whether `credential` accepts the client's answer, without changing state: lets the handler refresh
    /// a stale account store and look again before it decides (a password changed a moment ago).
    public func verifies(_ credential: StoredCredential?) -> Bool {
        guard case .awaitingCredential(_, let answer, _, _, let challenge, let plugin) = state, let credential else {
            return false
        }
        return Self.verify(answer, challenge: challenge, plugin: plugin, credential: credential).accepted
    }

    private static func verify(_ answer: [UInt8], challenge: [UInt8], plugin: String, credential: StoredCredential)
        -> (accepted: Bool, passwordSHA1: [UInt8]?)
    {
        switch credential {
        case .nativePassword(let doubleSHA1):
            guard plugin == MySQLNativePassword().name else { return (false, nil) }
            let recovered = MySQLNativePassword.recoverPasswordSHA1(
                response: answer, scramble: challenge, doubleSHA1: doubleSHA1)
            return (recovered != nil, recovered)
        case .empty:
            return (answer.isEmpty, nil)
        case .ed25519:
            guard plugin == MariaDBEd25519().name else { return (false, nil) }
            return (MariaDBEd25519().verify(response: answer, scramble: challenge, credential: credential), nil)
        }
    }

    /// The account store's answer: nil when there is no such account (the same error as a wrong password).
    /// `withoutPassword`: the account authenticates without a password (`unix_socket`), so a refusal is the
    /// server's 1698, which does not mention one.
    public mutating func credentialLookedUp(_ credential: StoredCredential?, withoutPassword: Bool = false) -> Action {
        guard
            case .awaitingCredential(let response, let answer, let tls, let sequenceID, let challenge, let plugin) =
                state
        else {
            return protocolError("credential arrived unexpectedly", sequenceID: 0)
        }
        let (verified, passwordSHA1) =
            credential.map { Self.verify(answer, challenge: challenge, plugin: plugin, credential: $0) } ?? (false, nil)
        guard verified else {
            if withoutPassword {
                return fail(
                    errno: 1698, sqlState: "28000",
                    message: "Access denied for user '\(response.username)'@'\(settings.clientHost)'",
                    sequenceID: sequenceID)
            }
            let using = answer.isEmpty ? "NO" : "YES"
            return fail(
                errno: 1045, sqlState: "28000",
                message:
                    "Access denied for user '\(response.username)'@'\(settings.clientHost)' (using password: \(using))",
                sequenceID: sequenceID)
        }
        state = .done(nextSequenceID: sequenceID &+ 1)
        var payload = ByteBuffer()
        Packets.OKPacket(status: [.autocommit]).encode(
            into: &payload, capabilities: response.capabilities.negotiated(with: settings.capabilities))
        var pluginAnswer: [UInt8]?
        if case .ed25519? = credential { pluginAnswer = answer }
        let login = Login(
            username: response.username, database: response.database,
            capabilities: response.capabilities.negotiated(with: settings.capabilities),
            collation: response.collation,
            attributes: Dictionary(response.attributes, uniquingKeysWith: { _, last in last }),
            passwordSHA1: passwordSHA1, pluginAnswer: pluginAnswer, tls: tls)
        return .authenticated(MySQLPacket(sequenceID: sequenceID, payload: payload), login)
    }

    private mutating func protocolError(_ reason: String, sequenceID: UInt8) -> Action {
        fail(errno: 1043, sqlState: "08S01", message: "Bad handshake (\(reason))", sequenceID: sequenceID)
    }

    private mutating func fail(errno: UInt16, sqlState: String, message: String, sequenceID: UInt8) -> Action {
        state = .done(nextSequenceID: sequenceID &+ 1)
        let error = Packets.ErrorPacket(errorCode: errno, sqlState: sqlState, message: message)
        var payload = ByteBuffer()
        error.encode(into: &payload, capabilities: [.protocol41])
        return .failAndClose(MySQLPacket(sequenceID: sequenceID, payload: payload), error)
    }
}
