import Logging
import MySQLWire
import NIOCore
import NIOPosix
import NIOSSL
import Topology

#if canImport(Glibc)
    import Glibc
#endif

/// What a backend login uses: the client's user, database, capabilities and character set.
struct BackendLoginRequest {
    var username: String
    var database: String?
    var capabilities: CapabilityFlags
    var collation: UInt8
    var attributes: [String: String]
    /// SHA1(password) of a `mysql_native_password` account; nil: no password, or a `client_ed25519` login
    /// (the server's challenge goes to the client).
    var passwordSHA1: [UInt8]?
    /// The sequence id of the ERR the client gets if the login fails.
    var failureSequenceID: UInt8
}

/// Opening the session's backend connection and logging in as the client's user.
extension ClientSession {
    func connectBackend(ok: MySQLPacket, login: ServerHandshakeStateMachine.Login) {
        phase = .connectingBackend(ok: ok, login: login)
        self.login = login
        logger[metadataKey: "user"] = "\(login.username)"
        if let answer = login.pluginAnswer, let backend {
            // The backend login is waiting for the client's signature (client_ed25519).
            backend.handler.answerPlugin(answer, channel: backend.channel)
            return
        }
        armBackendLoginTimeout()
        startBackendLogin(
            BackendLoginRequest(
                username: login.username, database: login.database, capabilities: login.capabilities,
                collation: login.collation, attributes: login.attributes, passwordSHA1: login.passwordSHA1,
                failureSequenceID: ok.sequenceID))
    }

    /// Opens the session's backend connection to the primary and logs in as `request.username`. While no
    /// primary is known, or it refuses connections, attempts repeat until `backendDeadline`
    /// (`proxy.failover_hold` after the first).
    func startBackendLogin(_ request: BackendLoginRequest) {
        guard let context else { return }
        backendLoginRequest = request
        if backendDeadline == nil { backendDeadline = .now() + .init(environment.settings.failoverHold) }
        guard let server = environment.state.primary else {
            retryBackendLogin(because: "no primary is known")
            return
        }
        var capabilities = request.capabilities.subtracting(Self.perHop)
        capabilities.insert(.protocol41)
        let policy: ClientHandshakeStateMachine.TLSPolicy = environment.backendTLS == nil ? .disabled : .required
        var attributes = request.attributes.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        attributes.append(("_proxy", "switchyard"))
        attributes.append(("_proxy_client_address", clientAddress))
        let machine = ClientHandshakeStateMachine(
            settings: .init(
                username: request.username, passwordSHA1: request.passwordSHA1, database: request.database,
                capabilities: capabilities, collation: request.collation, tls: policy, attributes: attributes))
        let started = ContinuousClock.now
        let loop = context.eventLoop
        let bound = NIOLoopBound(self, eventLoop: loop)
        let tls = environment.backendTLS?.current()
        let callbacks = BackendHandler.Callbacks(
            authenticated: { [weak self] session in
                self?.environment.metrics.backendConnected(after: .now - started)
                self?.backendAuthenticated(session)
            },
            loginFailed: { [weak self] error in self?.backendLoginFailed(error, server: server) },
            pluginChallenge: { [weak self] plugin, challenge in self?.backendPluginChallenge(plugin, challenge) },
            read: { [weak self] buffer in self?.backendRead(buffer) },
            readComplete: { [weak self] in self?.context?.flush() },
            writabilityChanged: { [weak self] writable in self?.backendWritabilityChanged(writable) },
            closed: { [weak self] in self?.backendClosed() })
        let handlerBox = NIOLoopBound(
            BackendHandler(
                machine: machine, server: server, tls: tls, tlsSecrets: environment.tlsSecrets,
                callbacks: callbacks), eventLoop: loop)
        let initialize: @Sendable (any Channel) -> EventLoopFuture<Void> = { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(handlerBox.value)
                let session = bound.value
                switch session.phase {
                case .connectingBackend, .handshake, .movingBackend: break
                case .command, .closed: throw ChannelError.ioOnClosedChannel
                }
                session.backend = Backend(channel: channel, handler: handlerBox.value, server: server)
            }
        }
        let connected: EventLoopFuture<any Channel>
        if let connector = environment.backendConnector {
            connected = connector(server, loop, initialize)
        } else {
            connected = Self.connect(
                to: server, on: loop, timeout: environment.settings.backendConnectTimeout,
                duplicate: environment.fastRelay != nil, initialize: initialize
            ).map { channel, descriptor in
                let session = bound.value
                guard let descriptor else { return channel }
                if session.backend?.channel === channel {
                    session.backend?.descriptor = descriptor
                    channel.closeFuture.whenComplete { _ in bound.value.releaseDescriptor(descriptor) }
                } else {
                    Glibc.close(descriptor)
                }
                return channel
            }
        }
        connected.whenFailure { error in
            bound.value.backendLoginFailed(.connect("\(error)"), server: server)
        }
    }

    /// The server asks for a `client_ed25519` signature: the client must sign the server's challenge.
    func backendPluginChallenge(_ plugin: String, _ challenge: [UInt8]) {
        guard case .handshake(var machine) = phase else { return }
        let action = machine.switchPlugin(plugin, challenge: challenge)
        phase = .handshake(machine)
        perform(action)
    }

    func backendAuthenticated(_ session: ClientHandshakeStateMachine.Session) {
        backendDeadline = nil
        if case .movingBackend = phase {
            backendMoved(session)
            return
        }
        guard case .connectingBackend(let ok, let login) = phase, backend != nil, let context else { return }
        canLogInAgain = login.pluginAnswer == nil
        backend?.session = session
        environment.state.noteServerVersion(session.serverVersion)
        let expected = login.capabilities.subtracting(Self.perHop)
        guard session.capabilities.isSuperset(of: expected) else {
            let missing = expected.subtracting(session.capabilities)
            backendUnavailable(
                "the server lacks capabilities the client negotiated (0x\(String(missing.rawValue, radix: 16)))",
                sequenceID: ok.sequenceID)
            return
        }
        handshakeTimeout?.cancel()
        handshakeTimeout = nil
        let server = backend?.server
        environment.state.update(connectionID) {
            $0.user = login.username
            $0.backend = server
            $0.backendThreadID = session.connectionID
        }
        environment.metrics.loggedIn(user: login.username, tlsVersion: tlsVersion(context))
        logger.debug("logged in", metadata: ["backend_thread": "\(session.connectionID)"])
        phase = .command
        // The client learns the session's status from this OK, so it carries the server's: autocommit and
        // NO_BACKSLASH_ESCAPES (which client-side escaping follows) as the server's global defaults set them.
        // (Not "session state changed": the server's tracking details are not passed on.)
        var answer = ByteBuffer()
        Packets.OKPacket(status: session.status.subtracting(.sessionStateChanged)).encode(
            into: &answer, capabilities: login.capabilities)
        write(MySQLPacket(sequenceID: ok.sequenceID, payload: answer), flush: true)
        if environment.tlsSecrets != nil {
            // Both hops are quiet now: the server has answered the login and the client waits for this OK.
            if let backend, environment.backendTLS != nil {
                startTLSFastPath(backend.channel, hop: "backend")
            }
            if isTLS(context) { startTLSFastPath(context.channel, hop: "client") }
        }
        offerToFastRelaySoon()  // after the fast path is on (the loop runs tasks in order)
        if login.capabilities.contains(.compress) {
            compression = Compression()
            decoder.checksContinuationSequence = false
        }
        if inbound.readableBytes > 0 { readInbound(context: context) }
    }

    func backendLoginFailed(_ error: BackendLoginError, server: ServerIdentity) {
        let sequenceID: UInt8
        switch phase {
        case .connectingBackend(let ok, _): sequenceID = ok.sequenceID
        case .handshake(let machine): sequenceID = machine.nextSequenceID  // an ed25519 login, before the proxy's OK
        case .movingBackend: sequenceID = 1  // the answer to the client's waiting command
        case .command, .closed: return
        }
        backend = nil
        switch (error, phase) {
        case (.connect, .connectingBackend), (.connect, .movingBackend), (.closed, .connectingBackend),
            (.closed, .movingBackend):
            // The primary is down or restarting: a failover may be under way.
            retryBackendLogin(because: "\(server.name) (\(server.host):\(server.port)): \(error)")
            return
        default:
            break
        }
        if case .login(.server(let refusal)) = error {
            // The server's own answer (unknown database, account locked, ...) goes to the client as is.
            logger.notice(
                "backend refused the login", metadata: ["server": "\(server.name)", "errno": "\(refusal.errorCode)"])
            environment.metrics.error(refusal.errorCode)
            var payload = ByteBuffer()
            refusal.encode(into: &payload, capabilities: [.protocol41])
            write(MySQLPacket(sequenceID: sequenceID, payload: payload), flush: true)
            close()
            return
        }
        backendUnavailable("\(server.name) (\(server.host):\(server.port)): \(error)", sequenceID: sequenceID)
    }

    /// A backend login may wait out a failover (`proxy.failover_hold`), then connect: the session's
    /// handshake timer is moved to cover both.
    func armBackendLoginTimeout() {
        let settings = environment.settings
        handshakeTimeout?.cancel()
        handshakeTimeout = context?.eventLoop.assumeIsolated().scheduleTask(
            in: .init(settings.failoverHold + settings.backendConnectTimeout + .seconds(1))
        ) { [weak self] in
            self?.handshakeTimedOut()
        }
    }

    /// Tries again shortly while the failover hold lasts; fails the login or the move after it.
    func retryBackendLogin(because reason: String) {
        guard let context, let request = backendLoginRequest else { return }
        let retry = NIODeadline.now() + Self.backendRetryInterval
        guard let deadline = backendDeadline, retry < deadline else {
            backendDeadline = nil
            if case .movingBackend = phase {
                moveFailed("no primary could be reached within proxy.failover_hold: \(reason)")
            } else {
                backendUnavailable(reason, sequenceID: request.failureSequenceID)
            }
            return
        }
        logger.debug("waiting for a reachable primary", metadata: ["reason": "\(reason)"])
        context.eventLoop.assumeIsolated().scheduleTask(deadline: retry) { [weak self] in
            guard let self, let request = self.backendLoginRequest else { return }
            switch self.phase {
            case .handshake, .connectingBackend, .movingBackend: self.startBackendLogin(request)
            case .command, .closed: break
            }
        }
    }

    /// How often a login or a move waiting out a failover looks for a reachable primary.
    static let backendRetryInterval = TimeAmount.milliseconds(100)

    func backendUnavailable(_ reason: String, sequenceID: UInt8) {
        logger.error("cannot open a backend connection: \(reason)")
        refuse(errno: 1105, sqlState: "HY000", "Switchyard cannot reach the primary: \(reason)", sequenceID: sequenceID)
    }

    func handshakeTimedOut() {
        handshakeTimeout = nil
        let sequenceID: UInt8
        switch phase {
        case .handshake(let machine): sequenceID = machine.nextSequenceID
        case .connectingBackend(let ok, _): sequenceID = ok.sequenceID
        case .movingBackend:
            moveFailed("the new server connection did not log in within proxy.failover_hold")
            return
        case .command, .closed: return
        }
        logger.notice("handshake timed out after \(environment.settings.handshakeTimeout)")
        refuse(errno: 1043, sqlState: "08S01", "Bad handshake (timed out)", sequenceID: sequenceID)
    }
}

extension ClientSession {
    /// Connects to `server` (off the event loop) and gives the socket to NIO on `loop`; succeeds with the
    /// channel and, with `duplicate` (for the fast relay), a duplicate of its descriptor, which the caller owns.
    static func connect(
        to server: ServerIdentity, on loop: any EventLoop, timeout: Duration, duplicate: Bool,
        initialize: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>
    ) -> EventLoopFuture<(any Channel, Int32?)> {
        NIOThreadPool.singleton.runIfActive(eventLoop: loop) { () throws -> (Int32, Int32?) in
            let socket = try Sockets.connect(host: server.host, port: server.port, timeout: timeout)
            let copy = duplicate ? dup(socket) : -1
            return (socket, copy >= 0 ? copy : nil)
        }.flatMap { socket, copy in
            ClientBootstrap(group: loop).channelInitializer(initialize).withConnectedSocket(socket)
                .map { ($0, copy) }
                .flatMapErrorThrowing { error in
                    if let copy { Glibc.close(copy) }
                    throw error
                }
        }
    }
}
