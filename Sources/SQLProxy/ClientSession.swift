import Logging
import MySQLWire
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import Topology

/// One client connection, from the greeting to the close. The login runs through
/// `ServerHandshakeStateMachine`; the command phase forwards each command to the session's backend and
/// streams the backend's answer back unchanged, with `ResponseTracker` knowing where every answer ends.
/// Everything runs on the client channel's event loop; the backend channel shares it.
final class ClientSession: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct Environment: Sendable {
        var settings: ProxySettings
        var state: ProxyState
        var accounts: AccountDirectory
        var serverTLS: ServerTLSContext?
        var backendTLS: NIOSSLContext?
        var metrics: ProxyMetrics
        var logger: Logger
    }

    private enum Phase {
        case handshake(ServerHandshakeStateMachine)
        /// The client is authenticated; the backend login runs. The OK is held until it succeeds.
        case connectingBackend(ok: MySQLPacket, login: ServerHandshakeStateMachine.Login)
        case command
        case closed
    }

    /// The session's database connection and what it was established with.
    private struct Backend {
        var channel: any Channel
        var handler: BackendHandler
        var server: ServerIdentity
        /// Set once the backend login succeeded.
        var session: ClientHandshakeStateMachine.Session?
    }

    private let environment: Environment
    private var phase: Phase = .closed
    private var connectionID: UInt32 = 0
    private var clientAddress = "unknown"
    private var login: ServerHandshakeStateMachine.Login?
    private var backend: Backend?
    private var context: ChannelHandlerContext?
    private var logger: Logger

    /// Client bytes not yet framed into packets.
    private var inbound = ByteBuffer()
    private var decoder: MySQLPacketDecoder
    /// Backend bytes held back because a packet header or prefix is incomplete.
    private var heldBackend: ByteBuffer?
    private var scanner = PacketStreamScanner()
    /// One tracker per command sent to the backend and not fully answered yet, oldest first (clients
    /// may pipeline commands).
    private var pending = CircularBuffer<ResponseTracker>()
    /// The first packet of the oldest pending response has not been seen yet.
    private var atResponseStart = true
    /// The backend asked for a LOCAL INFILE: the client's next packets are the file, up to an empty one.
    private var sendingLocalFile = false
    private var handshakeTimeout: Scheduled<Void>?
    private var registered = false
    /// The client hop's compressed protocol, from the login OK on, when the client asked for it.
    private var compression: Compression?
    /// The sequence id the backend expects on the next packet of an exchange the client continues
    /// (LOAD DATA LOCAL file packets); compressed clients' inner ids cannot be trusted for it.
    private var nextBackendSequenceID: UInt8 = 0

    private struct Compression {
        var decoder = CompressedPacketDecoder()
        let encoder = CompressedPacketEncoder()
        /// Every compressed packet to the client takes this id: one past the last the client sent, then
        /// counting up across the whole exchange.
        var nextSequenceID: UInt8 = 0
        var raw = ByteBuffer()
    }
    /// The greeting's scramble; `COM_CHANGE_USER` answers it again.
    private var scramble: [UInt8] = []
    /// A `COM_CHANGE_USER` in progress (the relay is paused while it runs).
    private var changeUser: ChangeUserStep?
    private var changeUserDecoder = MySQLPacketDecoder(maxPayloadSize: 1 << 20)
    private var changeUserInbound = ByteBuffer()

    private enum ChangeUserStep {
        /// The client must answer an AuthSwitchRequest (sequence id 2) for `scramble`.
        case awaitingClientAnswer(Packets.ChangeUser, scramble: [UInt8])
        /// The proxy looks the account up.
        case verifying
        /// The backend runs its own change of user; its final OK or ERR goes to the client as `clientSequence`.
        case awaitingBackend(Packets.ChangeUser, passwordSHA1: [UInt8]?, clientSequence: UInt8)
    }

    init(environment: Environment) {
        self.environment = environment
        self.logger = environment.logger
        self.decoder = MySQLPacketDecoder(maxPayloadSize: environment.settings.maxPacketSize)
    }

    // MARK: connection phase

    func channelActive(context: ChannelHandlerContext) {
        self.context = context
        let settings = environment.settings
        environment.metrics.connectionOpened()
        let remote = context.channel.remoteAddress
        clientAddress = remote?.ipAddress ?? "unknown"
        if clientAddress.hasPrefix("::ffff:") { clientAddress.removeFirst("::ffff:".count) }
        logger[metadataKey: "client"] = "\(clientAddress):\(remote?.port ?? 0)"

        if !settings.allowedNetworks.isEmpty, !settings.allowedNetworks.contains(where: { $0.contains(clientAddress) })
        {
            logger.notice("connection refused: address not in proxy.allowed_networks")
            refuse(
                errno: 1130, sqlState: "HY000",
                "Host '\(clientAddress)' is not allowed to connect to this MariaDB server")
            return
        }
        let loop = context.eventLoop
        let channel = context.channel
        guard
            let id = environment.state.register(
                limit: settings.maxConnections,
                { _ in
                    ProxyState.SessionHandle(
                        user: "", eventLoop: loop, backend: nil, backendThreadID: nil,
                        close: { loop.execute { channel.close(promise: nil) } })
                })
        else {
            logger.warning("connection refused: proxy.max_connections (\(settings.maxConnections)) reached")
            refuse(errno: 1040, sqlState: "08004", "Too many connections")
            return
        }
        registered = true
        connectionID = id
        logger[metadataKey: "connection_id"] = "\(id)"

        var capabilities = Self.advertisedCapabilities
        if environment.serverTLS != nil { capabilities.insert(.ssl) }
        scramble = Self.makeScramble()
        var machine = ServerHandshakeStateMachine(
            settings: .init(
                serverVersion: environment.state.serverVersion, connectionID: id, scramble: scramble,
                capabilities: capabilities, requireTLS: settings.requireTLS, clientHost: clientAddress,
                maxPacketSize: settings.maxPacketSize))
        let action = machine.start()
        phase = .handshake(machine)
        handshakeTimeout = context.eventLoop.scheduleTask(in: .init(settings.handshakeTimeout)) { [weak self] in
            self?.handshakeTimedOut()
        }
        perform(action)
    }

    /// What the proxy offers clients: everything it relays faithfully and MariaDB 10.11 supports.
    /// Progress reports and metadata caching are not offered. Compression is the client hop's own (the
    /// backend hop is never compressed).
    static let advertisedCapabilities: CapabilityFlags = [
        .longFlag, .foundRows, .connectWithDB, .noSchema, .odbc, .localFiles, .ignoreSpace, .protocol41,
        .interactive, .ignoreSigpipe, .transactions, .secureConnection, .multiStatements, .multiResults,
        .psMultiResults, .pluginAuth, .connectAttributes, .pluginAuthLengthEncodedClientData,
        .canHandleExpiredPasswords, .sessionTrack, .deprecateEOF, .mariaDBStatementBulkOperations,
        .mariaDBExtendedTypeInfo, .compress,
    ]

    /// Capabilities that belong to one hop only and are not passed on to the backend as the client's.
    private static let perHop: CapabilityFlags = [.ssl, .compress, .connectWithDB, .connectAttributes]

    private static func makeScramble() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<20).map { _ in UInt8.random(in: 33...126, using: &generator) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        environment.metrics.bytes(fromClient: buffer.readableBytes)
        if var compression {
            self.compression = nil  // not held twice while mutated
            compression.raw.writeBuffer(&buffer)
            do {
                while let stream = try compression.decoder.decodeStream(&compression.raw) {
                    appendInbound(stream.bytes)
                    compression.nextSequenceID = stream.lastSequenceID &+ 1
                }
                if compression.raw.readableBytes == 0 { compression.raw.clear() }
                self.compression = compression
            } catch {
                self.compression = compression
                let errno = (error as? CompressedPacketError)?.serverErrno ?? 1157
                environment.metrics.error(errno)
                logger.notice("bad compressed packet from the client: \(error)")
                refuse(errno: errno, sqlState: "08S01", "Bad compressed packet: \(error)", sequenceID: 1)
                return
            }
        } else {
            appendInbound(buffer)
        }
        switch phase {
        case .handshake:
            readHandshake(context: context)
        case .command:
            readCommands(context: context)
        case .connectingBackend:
            break  // a well-behaved client waits for the OK; anything it sends early is read afterwards
        case .closed:
            inbound.clear()
        }
    }

    /// Adds client bytes to what is still to be framed: the read buffer itself when nothing is pending
    /// (no copy), else appended; bytes already framed are dropped so a long session does not grow it.
    private func appendInbound(_ bytes: ByteBuffer) {
        if inbound.readableBytes == 0 {
            inbound = bytes
            return
        }
        if inbound.readerIndex > 1 << 16 { inbound.discardReadBytes() }
        inbound.writeImmutableBuffer(bytes)
    }

    private func readHandshake(context: ChannelHandlerContext) {
        do {
            while case .handshake(var machine) = phase, let packet = try decoder.decode(buffer: &inbound) {
                let action = machine.packetReceived(packet)
                phase = .handshake(machine)
                perform(action)
            }
        } catch {
            badPacket(error, sequenceID: 2)
        }
    }

    private func perform(_ action: ServerHandshakeStateMachine.Action) {
        guard let context else { return }
        switch action {
        case .send(let packet):
            write(packet, flush: true)
        case .startTLS:
            startTLS(context: context)
        case .lookUpCredential(let username):
            lookUpCredential(username)
        case .authenticated(let ok, let login):
            connectBackend(ok: ok, login: login)
        case .failAndClose(let packet, let error):
            loginFailed(packet, error)
        case .wait:
            break
        }
    }

    private func startTLS(context: ChannelHandlerContext) {
        guard let serverTLS = environment.serverTLS else { return }
        do {
            try context.pipeline.syncOperations.addHandler(
                NIOSSLServerHandler(context: serverTLS.current()), position: .first)
        } catch {
            logger.error("cannot start TLS: \(error)")
            close()
            return
        }
        // Bytes that came with the SSLRequest are the start of the TLS handshake: give them to TLS.
        if inbound.readableBytes > 0 {
            let early = inbound
            inbound = ByteBuffer()
            context.pipeline.fireChannelRead(NIOAny(early))
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event, case .handshake(var machine) = phase {
            let action = machine.tlsEstablished()
            phase = .handshake(machine)
            perform(action)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func lookUpCredential(_ username: String) {
        guard case .handshake(let machine) = phase, let context else { return }
        let settings = environment.settings
        let throttleKey = "\(username)@\(clientAddress)"
        if let networks = settings.userNetworks[username], !networks.contains(where: { $0.contains(clientAddress) }) {
            logger.notice(
                "login refused: address not in the user's allowed networks", metadata: ["user": "\(username)"])
            deny(machine, username: username)
            return
        }
        if environment.state.isThrottled(
            throttleKey, max: settings.authThrottleMaxFailures, window: settings.authThrottleWindow,
            now: .now)
        {
            environment.metrics.error(4151)
            refuse(
                errno: 4151, sqlState: "HY000",
                "User is blocked because of too many credential errors; retry after \(settings.authThrottleWindow)",
                sequenceID: 2)
            return
        }
        let accounts = environment.accounts
        let address = clientAddress
        let snapshot = machine
        let tls = isTLS(context)
        let lookup = context.eventLoop.makeFutureWithTask { () -> Account? in
            var account = await accounts.match(user: username, clientAddress: address)
            if !snapshot.verifies(account.flatMap(Self.credential)) {
                await accounts.refresh()
                account = await accounts.match(user: username, clientAddress: address)
            }
            return account
        }
        lookup.whenSuccess { [weak self] account in
            guard let self, case .handshake(var machine) = self.phase else { return }
            if let account, account.plugin == MariaDBEd25519.serverPluginName, !(account.requiresTLS && !tls),
                machine.answeredPlugin != MariaDBEd25519().name, let response = machine.pendingResponse
            {
                // The proxy cannot sign for the user: the server's own challenge goes to the client, whose
                // signature the proxy verifies with the stored public key before handing it on.
                self.startBackendLogin(
                    username: response.username, database: response.database,
                    capabilities: response.capabilities.negotiated(with: machine.settings.capabilities),
                    collation: response.collation,
                    attributes: Dictionary(response.attributes, uniquingKeysWith: { _, last in last }),
                    passwordSHA1: nil, failureSequenceID: machine.settings.scramble.isEmpty ? 2 : 2)
                return
            }
            var credential = account.flatMap(Self.credential)
            if let account, account.requiresTLS && !tls {
                self.logger.notice("login refused: the account requires TLS", metadata: ["user": "\(username)"])
                credential = nil
            }
            if let account, credential == nil, !account.requiresTLS {
                self.logger.notice(
                    "login refused: the account's auth plugin is not supported by the proxy",
                    metadata: ["user": "\(username)", "plugin": "\(account.plugin)"])
            }
            let action = machine.credentialLookedUp(credential)
            self.phase = .handshake(machine)
            if case .authenticated = action {
                self.environment.state.clearFailedLogins(throttleKey)
            } else if case .failAndClose = action {
                self.environment.state.recordFailedLogin(
                    throttleKey, max: settings.authThrottleMaxFailures, now: .now)
            }
            self.perform(action)
        }
    }

    /// Answers as for a wrong password.
    private func deny(_ machine: ServerHandshakeStateMachine, username: String) {
        var machine = machine
        let action = machine.credentialLookedUp(nil)
        phase = .handshake(machine)
        perform(action)
    }

    private static func credential(_ account: Account) -> StoredCredential? {
        switch account.plugin {
        case "mysql_native_password", "":
            MySQLNativePassword.storedCredential(fromAuthenticationString: account.authenticationString)
        case MariaDBEd25519.serverPluginName:
            MariaDBEd25519.storedCredential(fromAuthenticationString: account.authenticationString)
        default:
            nil
        }
    }

    private func loginFailed(_ packet: MySQLPacket, _ error: Packets.ErrorPacket) {
        environment.metrics.error(error.errorCode)
        if error.errorCode == 1045 { environment.metrics.failedLogin() }
        logger.notice("login failed", metadata: ["errno": "\(error.errorCode)", "error": "\(error.message)"])
        write(packet, flush: true)
        close()
    }

    private func connectBackend(ok: MySQLPacket, login: ServerHandshakeStateMachine.Login) {
        phase = .connectingBackend(ok: ok, login: login)
        self.login = login
        logger[metadataKey: "user"] = "\(login.username)"
        if let answer = login.pluginAnswer, let backend {
            // The backend login is waiting for the client's signature (client_ed25519).
            backend.handler.answerPlugin(answer, channel: backend.channel)
            return
        }
        startBackendLogin(
            username: login.username, database: login.database, capabilities: login.capabilities,
            collation: login.collation, attributes: login.attributes, passwordSHA1: login.passwordSHA1,
            failureSequenceID: ok.sequenceID)
    }

    /// Opens the session's backend connection to the primary and logs in as the client's user.
    private func startBackendLogin(
        username: String, database: String?, capabilities clientCapabilities: CapabilityFlags, collation: UInt8,
        attributes clientAttributes: [String: String], passwordSHA1: [UInt8]?, failureSequenceID: UInt8
    ) {
        guard let context else { return }
        guard let server = environment.state.primary else {
            backendUnavailable("no primary is known", sequenceID: failureSequenceID)
            return
        }
        var capabilities = clientCapabilities.subtracting(Self.perHop)
        capabilities.insert(.protocol41)
        let policy: ClientHandshakeStateMachine.TLSPolicy = environment.backendTLS == nil ? .disabled : .required
        var attributes = clientAttributes.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        attributes.append(("_proxy", "switchyard"))
        attributes.append(("_proxy_client_address", clientAddress))
        let machine = ClientHandshakeStateMachine(
            settings: .init(
                username: username, passwordSHA1: passwordSHA1, database: database,
                capabilities: capabilities, collation: collation, tls: policy, attributes: attributes))
        let started = ContinuousClock.now
        let loop = context.eventLoop
        let bound = NIOLoopBound(self, eventLoop: loop)
        let tls = environment.backendTLS
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
            BackendHandler(machine: machine, server: server, tls: tls, callbacks: callbacks), eventLoop: loop)
        ClientBootstrap(group: loop)
            .connectTimeout(.init(environment.settings.backendConnectTimeout))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(handlerBox.value)
                    let session = bound.value
                    switch session.phase {
                    case .connectingBackend, .handshake: break
                    case .command, .closed: throw ChannelError.ioOnClosedChannel
                    }
                    session.backend = Backend(channel: channel, handler: handlerBox.value, server: server)
                }
            }
            .connect(host: server.host, port: server.port)
            .whenFailure { error in
                bound.value.backendLoginFailed(.connect("\(error)"), server: server)
            }
    }

    /// The server asks for a `client_ed25519` signature: the client must sign the server's challenge.
    private func backendPluginChallenge(_ plugin: String, _ challenge: [UInt8]) {
        guard case .handshake(var machine) = phase else { return }
        let action = machine.switchPlugin(plugin, challenge: challenge)
        phase = .handshake(machine)
        perform(action)
    }

    private func backendAuthenticated(_ session: ClientHandshakeStateMachine.Session) {
        guard case .connectingBackend(let ok, let login) = phase, backend != nil, let context else { return }
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
        write(ok, flush: true)
        if login.capabilities.contains(.compress) {
            compression = Compression()
            decoder.checksContinuationSequence = false
        }
        if inbound.readableBytes > 0 { readCommands(context: context) }
    }

    private func backendLoginFailed(_ error: BackendLoginError, server: ServerIdentity) {
        let sequenceID: UInt8
        switch phase {
        case .connectingBackend(let ok, _): sequenceID = ok.sequenceID
        case .handshake: sequenceID = 2  // an ed25519 login, before the client answered the challenge
        case .command, .closed: return
        }
        let ok = MySQLPacket(sequenceID: sequenceID, payload: ByteBuffer())
        backend = nil
        if case .login(.server(let refusal)) = error {
            // The server's own answer (unknown database, account locked, ...) goes to the client as is.
            logger.notice(
                "backend refused the login", metadata: ["server": "\(server.name)", "errno": "\(refusal.errorCode)"])
            environment.metrics.error(refusal.errorCode)
            var payload = ByteBuffer()
            refusal.encode(into: &payload, capabilities: [.protocol41])
            write(MySQLPacket(sequenceID: ok.sequenceID, payload: payload), flush: true)
            close()
            return
        }
        backendUnavailable("\(server.name) (\(server.host):\(server.port)): \(error)", sequenceID: ok.sequenceID)
    }

    private func backendUnavailable(_ reason: String, sequenceID: UInt8) {
        logger.error("cannot open a backend connection: \(reason)")
        refuse(errno: 1105, sqlState: "HY000", "Switchyard cannot reach the primary: \(reason)", sequenceID: sequenceID)
    }

    private func handshakeTimedOut() {
        handshakeTimeout = nil
        switch phase {
        case .handshake, .connectingBackend:
            logger.notice("handshake timed out after \(environment.settings.handshakeTimeout)")
            refuse(errno: 1043, sqlState: "08S01", "Bad handshake (timed out)", sequenceID: 2)
        case .command, .closed:
            break
        }
    }

    // MARK: command phase

    private func readCommands(context: ChannelHandlerContext) {
        guard let backend else { return }
        var wrote = false
        do {
            while case .command = phase, changeUser == nil || isAwaitingClientAnswer {
                let start = inbound.readerIndex
                guard let packet = try decoder.decode(buffer: &inbound) else { break }
                // The packet's own bytes, header included, when it came as one chunk: forwarded as they
                // are unless the proxy has to change them.
                let wire =
                    inbound.readerIndex - start == packet.payload.readableBytes + 4
                    ? inbound.getSlice(at: start, length: packet.payload.readableBytes + 4) : nil
                if case .awaitingClientAnswer(let request, let scramble) = changeUser {
                    guard packet.sequenceID == 2 || compression != nil else {
                        refuse(
                            errno: 1156, sqlState: "08S01", "Got packets out of order",
                            sequenceID: packet.sequenceID &+ 1)
                        return
                    }
                    verifyChangeUser(
                        request, response: Array(packet.payload.readableBytesView), scramble: scramble,
                        clientSequence: 3, backend: backend)
                    continue
                }
                if forward(packet, wire: wire, to: backend) { wrote = true }
            }
        } catch {
            badPacket(error, sequenceID: 1)
            return
        }
        if wrote { backend.channel.flush() }
    }

    /// Handles one client packet of the command phase; returns whether anything was written to the backend.
    private func forward(_ packet: MySQLPacket, wire: ByteBuffer?, to backend: Backend) -> Bool {
        if sendingLocalFile {
            if packet.payload.readableBytes == 0 {
                sendingLocalFile = false
                if !pending.isEmpty { pending[pending.startIndex].clientFinishedLocalInfile() }
            }
            var packet = packet
            packet.sequenceID = nextBackendSequenceID
            nextBackendSequenceID &+= UInt8(truncatingIfNeeded: packet.payload.readableBytes / MySQLPacket.maxChunk + 1)
            send(packet, to: backend)
            return true
        }
        guard packet.sequenceID == 0 || compression != nil else {
            reply(errno: 1156, sqlState: "08S01", "Got packets out of order", sequenceID: packet.sequenceID &+ 1)
            close()
            return false
        }
        guard let byte = packet.payload.getInteger(at: packet.payload.readerIndex, as: UInt8.self) else {
            reply(errno: 1047, sqlState: "08S01", "Unknown command", sequenceID: 1)
            return false
        }
        environment.metrics.command(byte)
        if pending.isEmpty, let primary = environment.state.primary, primary != backend.server {
            // The session's state (transaction, prepared statements, variables) lives on the old primary;
            // moving it silently could change what the client's statements mean. End it clearly instead.
            logger.notice(
                "primary moved; ending the session",
                metadata: ["from": "\(backend.server.name)", "to": "\(primary.name)"])
            refuse(
                errno: 1927, sqlState: "70100",
                "Connection was killed: the primary moved from \(backend.server.name) to \(primary.name); reconnect",
                sequenceID: 1)
            return false
        }
        guard let command = Command(rawValue: byte) else {
            reply(errno: 1047, sqlState: "08S01", "Unknown command", sequenceID: 1)
            return false
        }
        var packet = packet
        var rewritten = false
        switch command {
        case .quit:
            close()
            return false
        case .changeUser:
            startChangeUser(packet, backend: backend)
            return false
        case .processKill:
            var payload = packet.payload
            payload.moveReaderIndex(forwardBy: 1)
            guard let id = payload.readInteger(endianness: .little, as: UInt32.self) else {
                reply(errno: 1047, sqlState: "08S01", "Malformed COM_PROCESS_KILL", sequenceID: 1)
                return false
            }
            guard let target = mapKillTarget(id, on: backend) else { return false }
            var kill = ByteBuffer()
            kill.writeInteger(command.rawValue)
            kill.writeInteger(target, endianness: .little)
            packet.payload = kill
            rewritten = true
        case .query, .statementPrepare:
            switch SQLRewriter.rewrite(
                packet.payload, connectionID: connectionID,
                killTarget: { id in
                    self.mapKillTarget(id, on: backend)
                })
            {
            case .unchanged:
                break
            case .rewritten(let payload):
                packet.payload = payload
                rewritten = true
            case .refused:
                return false
            }
        default:
            break
        }
        if let wire, !rewritten, compression == nil {
            backend.channel.write(wire, promise: nil)  // the client's bytes as they came: no copy
        } else {
            send(packet, to: backend)
        }
        if ResponseTracker.expectsResponse(command) {
            pending.append(ResponseTracker(command: command, capabilities: backend.session?.capabilities ?? []))
        }
        return true
    }

    /// The backend thread of the proxy session `id`, for KILL; nil (after answering ERR 1094) when there is
    /// no such session or it is not on this session's server.
    private func mapKillTarget(_ id: UInt32, on backend: Backend) -> UInt32? {
        if let target = environment.state.session(id), let thread = target.backendThreadID,
            target.backend == backend.server
        {
            return thread
        }
        reply(errno: 1094, sqlState: "HY000", "Unknown thread id: \(id)", sequenceID: 1)
        return nil
    }

    private func send(_ packet: MySQLPacket, to backend: Backend) {
        var out = backend.channel.allocator.buffer(capacity: packet.payload.readableBytes + 4)
        MySQLPacketEncoder.write(packet, into: &out)
        backend.channel.write(out, promise: nil)
    }

    private func backendRead(_ buffer: ByteBuffer) {
        guard let context else { return }
        var buffer = buffer
        if case .awaitingBackend = changeUser {
            changeUserInbound.writeBuffer(&buffer)
            backendChangeUserRead()
            return
        }
        if var held = heldBackend.take() {
            held.writeBuffer(&buffer)
            buffer = held
        }
        let forwardable: Int
        let prefixLength = scanner.prefixLength
        do {
            forwardable = try scanner.scan(buffer) { packet in
                guard !packet.isContinuation else { return true }
                guard !pending.isEmpty else { throw ProxyProtocolError("the server sent a packet nobody asked for") }
                let prefix = buffer.getSlice(at: packet.payloadIndex, length: min(packet.length, prefixLength))!
                if atResponseStart, prefix.getInteger(at: prefix.readerIndex, as: UInt8.self) == 0xFF,
                    let errno = prefix.getInteger(at: prefix.readerIndex + 1, endianness: .little, as: UInt16.self)
                {
                    environment.metrics.error(errno)
                }
                atResponseStart = false
                switch pending[pending.startIndex].serverPacket(prefix: prefix, length: packet.length) {
                case .inProgress:
                    break
                case .finished:
                    pending.removeFirst()
                    atResponseStart = true
                case .localInfileRequested:
                    sendingLocalFile = true
                    nextBackendSequenceID = packet.sequenceID &+ 1
                case .protocolViolation(let reason):
                    throw ProxyProtocolError(reason)
                }
                return true
            }
        } catch {
            logger.error("backend protocol error: \(error)")
            close()
            return
        }
        if forwardable > 0, let slice = buffer.readSlice(length: forwardable) {
            emit(slice, context: context)
        }
        if buffer.readableBytes > 0 { heldBackend = buffer }
    }

    private func backendWritabilityChanged(_ writable: Bool) {
        // Client uploads (LOAD DATA, long data) pause while the backend's socket is full.
        context?.channel.setOption(ChannelOptions.autoRead, value: writable).whenFailure { _ in }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        // Results pause at the backend while the client reads slower than the server sends.
        backend?.channel.setOption(ChannelOptions.autoRead, value: context.channel.isWritable).whenFailure { _ in }
        context.fireChannelWritabilityChanged()
    }

    private func backendClosed() {
        guard case .command = phase else { return }
        logger.notice(
            "backend connection lost; closing the client session",
            metadata: ["server": "\(backend?.server.name ?? "?")", "pending_responses": "\(pending.count)"])
        backend = nil
        close()
    }

    // MARK: COM_CHANGE_USER

    private var isAwaitingClientAnswer: Bool {
        if case .awaitingClientAnswer = changeUser { return true }
        return false
    }

    /// The proxy verifies the new user itself (as at login), then has the backend change user with the
    /// recovered SHA1(password); the backend's OK or ERR goes back to the client.
    private func startChangeUser(_ packet: MySQLPacket, backend: Backend) {
        guard let login, pending.isEmpty else {
            reply(errno: 1047, sqlState: "08S01", "COM_CHANGE_USER while a response is pending", sequenceID: 1)
            return
        }
        let request: Packets.ChangeUser
        do {
            request = try Packets.ChangeUser.decode(packet.payload, capabilities: login.capabilities)
        } catch {
            refuse(errno: 1047, sqlState: "08S01", "Malformed COM_CHANGE_USER", sequenceID: 1)
            return
        }
        let native = MySQLNativePassword().name
        if let plugin = request.authPluginName, !plugin.isEmpty, plugin != native {
            // Answer with our plugin and a fresh scramble; the client's next packet is its answer.
            let fresh = Self.makeScramble()
            changeUser = .awaitingClientAnswer(request, scramble: fresh)
            var payload = ByteBuffer()
            Packets.AuthSwitchRequest(pluginName: native, pluginData: fresh).encode(into: &payload)
            write(MySQLPacket(sequenceID: 1, payload: payload), flush: true)
            return
        }
        verifyChangeUser(
            request, response: request.authResponse, scramble: scramble, clientSequence: 1, backend: backend)
    }

    private func verifyChangeUser(
        _ request: Packets.ChangeUser, response: [UInt8], scramble: [UInt8], clientSequence: UInt8, backend: Backend
    ) {
        guard let context else { return }
        changeUser = .verifying
        let accounts = environment.accounts
        let address = clientAddress
        let tls = isTLS(context)
        let networks = environment.settings.userNetworks[request.username]
        @Sendable func verify(_ account: Account?) -> [UInt8]?? {
            guard let account, !(account.requiresTLS && !tls), let credential = Self.credential(account) else {
                return .none
            }
            switch credential {
            case .empty: return response.isEmpty ? .some(nil) : .none
            case .nativePassword(let doubleSHA1):
                return MySQLNativePassword.recoverPasswordSHA1(
                    response: response, scramble: scramble, doubleSHA1: doubleSHA1
                )
                .map { .some($0) } ?? .none
            case .ed25519:
                return .none  // changing user to an ed25519 account is not supported yet (1045)
            }
        }
        let lookup = context.eventLoop.makeFutureWithTask { () -> [UInt8]?? in
            if let networks, !networks.contains(where: { $0.contains(address) }) { return .none }
            var verified = verify(await accounts.match(user: request.username, clientAddress: address))
            if verified == nil {
                await accounts.refresh()
                verified = verify(await accounts.match(user: request.username, clientAddress: address))
            }
            return verified
        }
        lookup.whenSuccess { [weak self] verified in
            guard let self, case .verifying = self.changeUser, let backend = self.backend else { return }
            guard case .some(let passwordSHA1) = verified else {
                self.changeUser = nil
                self.environment.metrics.failedLogin()
                let using = response.isEmpty ? "NO" : "YES"
                self.logger.notice("change user refused", metadata: ["new_user": "\(request.username)"])
                self.refuse(
                    errno: 1045, sqlState: "28000",
                    "Access denied for user '\(request.username)'@'\(address)' (using password: \(using))",
                    sequenceID: clientSequence)
                return
            }
            let capabilities = backend.session?.capabilities ?? []
            var forwarded = request
            forwarded.authPluginName = MySQLNativePassword().name
            forwarded.authResponse =
                passwordSHA1.map {
                    MySQLNativePassword.response(passwordSHA1: $0, scramble: backend.session?.scramble ?? [])
                } ?? []
            forwarded.attributes["_proxy"] = "switchyard"
            forwarded.attributes["_proxy_client_address"] = address
            var payload = ByteBuffer()
            forwarded.encode(into: &payload, capabilities: capabilities)
            self.changeUser = .awaitingBackend(request, passwordSHA1: passwordSHA1, clientSequence: clientSequence)
            self.send(MySQLPacket(sequenceID: 0, payload: payload), to: backend)
            backend.channel.flush()
        }
    }

    /// The backend's side of a change of user: OK, ERR, or an auth switch the proxy answers itself.
    private func backendChangeUserRead() {
        guard case .awaitingBackend(let request, let passwordSHA1, let clientSequence) = changeUser, let backend else {
            return
        }
        do {
            while let packet = try changeUserDecoder.decode(buffer: &changeUserInbound) {
                let header = packet.payload.getInteger(at: packet.payload.readerIndex, as: UInt8.self)
                switch header {
                case 0x00:
                    changeUser = nil
                    login?.username = request.username
                    login?.database = request.database.isEmpty ? nil : request.database
                    login?.passwordSHA1 = passwordSHA1
                    environment.state.update(connectionID) { $0.user = request.username }
                    logger[metadataKey: "user"] = "\(request.username)"
                    write(MySQLPacket(sequenceID: clientSequence, payload: packet.payload), flush: true)
                    let rest = changeUserInbound
                    changeUserInbound = ByteBuffer()
                    if rest.readableBytes > 0 { backendRead(rest) }
                    if inbound.readableBytes > 0, let context { readCommands(context: context) }
                    return
                case 0xFE:
                    guard let switchRequest = Packets.AuthSwitchRequest.decode(packet.payload),
                        switchRequest.pluginName == MySQLNativePassword().name
                    else { throw ProxyProtocolError("the server asked for an unsupported plugin during change user") }
                    let answer =
                        passwordSHA1.map {
                            MySQLNativePassword.response(passwordSHA1: $0, scramble: switchRequest.pluginData)
                        } ?? []
                    send(
                        MySQLPacket(sequenceID: packet.sequenceID &+ 1, payload: ByteBuffer(bytes: answer)), to: backend
                    )
                    backend.channel.flush()
                default:
                    changeUser = nil
                    logger.notice(
                        "the server refused the change of user", metadata: ["new_user": "\(request.username)"])
                    write(MySQLPacket(sequenceID: clientSequence, payload: packet.payload), flush: true)
                    close()
                    return
                }
            }
        } catch {
            logger.error("backend protocol error during change user: \(error)")
            close()
        }
    }

    // MARK: errors and closing

    private func badPacket(_ error: any Error, sequenceID: UInt8) {
        if let wire = error as? MySQLWireError, case .packetTooLarge = wire.kind {
            environment.metrics.error(1153)
            refuse(
                errno: 1153, sqlState: "08S01", "Got a packet bigger than 'max_allowed_packet' bytes",
                sequenceID: sequenceID)
        } else {
            environment.metrics.error(1156)
            logger.notice("malformed packet from the client: \(error)")
            refuse(errno: 1156, sqlState: "08S01", "Got packets out of order", sequenceID: sequenceID)
        }
    }

    /// Sends an ERR and keeps the session.
    private func reply(errno: UInt16, sqlState: String, _ message: String, sequenceID: UInt8) {
        environment.metrics.error(errno)
        write(errorPacket(errno: errno, sqlState: sqlState, message, sequenceID: sequenceID), flush: true)
    }

    /// Sends an ERR, then closes.
    private func refuse(errno: UInt16, sqlState: String, _ message: String, sequenceID: UInt8 = 0) {
        write(errorPacket(errno: errno, sqlState: sqlState, message, sequenceID: sequenceID), flush: true)
        close()
    }

    private func errorPacket(errno: UInt16, sqlState: String, _ message: String, sequenceID: UInt8) -> MySQLPacket {
        var payload = ByteBuffer()
        Packets.ErrorPacket(errorCode: errno, sqlState: sqlState, message: message).encode(
            into: &payload, capabilities: [.protocol41])
        return MySQLPacket(sequenceID: sequenceID, payload: payload)
    }

    private func write(_ packet: MySQLPacket, flush: Bool) {
        guard let context else { return }
        var out = context.channel.allocator.buffer(capacity: packet.payload.readableBytes + 4)
        MySQLPacketEncoder.write(packet, into: &out)
        emit(out, context: context)
        if flush { context.flush() }
    }

    /// Writes ordinary packet bytes to the client, wrapped in compressed packets once compression is on.
    private func emit(_ bytes: ByteBuffer, context: ChannelHandlerContext) {
        guard var compression else {
            environment.metrics.bytes(toClient: bytes.readableBytes)
            context.write(wrapOutboundOut(bytes), promise: nil)
            return
        }
        var out = context.channel.allocator.buffer(capacity: bytes.readableBytes / 2 + 64)
        compression.nextSequenceID = compression.encoder.encode(
            bytes, sequenceID: compression.nextSequenceID, into: &out)
        self.compression = compression
        environment.metrics.bytes(toClient: out.readableBytes)
        context.write(wrapOutboundOut(out), promise: nil)
    }

    private func close() {
        guard let context else { return }
        if case .closed = phase, !context.channel.isActive { return }
        phase = .closed
        handshakeTimeout?.cancel()
        handshakeTimeout = nil
        if let backend {
            self.backend = nil
            backend.handler.detachFromSession(channel: backend.channel)
        }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        phase = .closed
        handshakeTimeout?.cancel()
        if let backend {
            self.backend = nil
            backend.handler.detachFromSession(channel: backend.channel)
        }
        if registered {
            registered = false
            environment.state.unregister(connectionID)
        }
        environment.metrics.connectionClosed()
        self.context = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let tls = error as? NIOSSLError, case .uncleanShutdown = tls {
            logger.debug("client closed TLS without close_notify")  // common and harmless after COM_QUIT
        } else {
            logger.notice("client connection error: \(error)")
        }
        close()
    }

    private func isTLS(_ context: ChannelHandlerContext) -> Bool {
        (try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self)) != nil
    }

    private func tlsVersion(_ context: ChannelHandlerContext) -> String {
        guard let handler = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self),
            let version = handler.tlsVersion
        else { return "none" }
        switch version {
        case .tlsv13: return "TLSv1.3"
        case .tlsv12: return "TLSv1.2"
        default: return "\(version)"
        }
    }
}

struct ProxyProtocolError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
