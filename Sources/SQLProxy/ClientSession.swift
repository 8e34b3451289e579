import Logging
import MySQLWire
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import TLSRecordLayer
import Topology

#if canImport(Glibc)
    import Glibc
#endif

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
        /// The client context for server connections (reloaded as its files change); nil for plaintext.
        var backendTLS: ReloadingTLSContext?
        /// Set when the TLS fast path is on.
        var tlsSecrets: TLSSecretLog? = nil
        var metrics: ProxyMetrics
        var logger: Logger
        /// Opens the session's backend connections; nil: TCP through `ClientBootstrap`. Tests and the
        /// fuzzer play the server on a channel of their own.
        var backendConnector: BackendConnector? = nil
        /// Carries quiet sessions' everyday commands outside NIO; nil: NIO carries everything.
        var fastRelay: FastRelay? = nil
    }

    enum Phase {
        case handshake(ServerHandshakeStateMachine)
        /// The client is authenticated; the backend login runs. The OK is held until it succeeds.
        case connectingBackend(ok: MySQLPacket, login: ServerHandshakeStateMachine.Login)
        case command
        /// Between statements, the session moves to a new server connection (`ClientSession+Move`); the
        /// client's next command waits in `inbound`.
        case movingBackend(reason: String)
        case closed
    }

    /// The session's database connection and what it was established with.
    struct Backend {
        var channel: any Channel
        var handler: BackendHandler
        var server: ServerIdentity
        /// Set once the backend login succeeded.
        var session: ClientHandshakeStateMachine.Session?
        /// The socket's descriptor (a duplicate of NIO's), when the proxy connected it itself.
        var descriptor: Int32? = nil
    }

    let environment: Environment
    var phase: Phase = .closed
    var connectionID: UInt32 = 0
    var clientAddress = "unknown"
    /// The certificate the client presented in its TLS handshake (verified against the client CA).
    var clientCertificate: CertificateNames?
    var login: ServerHandshakeStateMachine.Login?
    var backend: Backend?
    var context: ChannelHandlerContext?
    var logger: Logger

    /// Client bytes not yet framed into packets.
    var inbound = ByteBuffer()
    var decoder: MySQLPacketDecoder
    /// Backend bytes held back because a packet header or prefix is incomplete.
    var heldBackend: ByteBuffer?
    /// An answer held whole before it goes to the client (see `HeldAnswer`).
    var heldAnswer: HeldAnswer?
    /// Proxy sessions whose connection a KILL in the command being sent ends.
    var killedSessions: [UInt32] = []
    /// The command phase's bookkeeping (with `FastRelay` while it carries the session).
    var relay = CommandRelay()
    var handshakeTimeout: Scheduled<Void>?
    var registered = false
    /// The client hop's compressed protocol, from the login OK on, when the client asked for it.
    var compression: Compression?
    struct Compression {
        var decoder = CompressedPacketDecoder()
        let encoder = CompressedPacketEncoder()
        /// Every compressed packet to the client takes this id: one past the last the client sent, then
        /// counting up across the whole exchange.
        var nextSequenceID: UInt8 = 0
        var raw = ByteBuffer()
    }
    /// What the backend login in progress (or the next attempt) uses.
    var backendLoginRequest: BackendLoginRequest?
    /// Until when opening a backend connection is retried while no primary is known or it cannot be
    /// reached (`proxy.failover_hold`); set by the first attempt, cleared on success.
    var backendDeadline: NIODeadline?
    /// While a move replays the session's `SET` statements and prepares on the new connection.
    var replay: StateReplay?
    /// The proxy can log in again as the session's user without the client: a `mysql_native_password`
    /// login (the proxy holds SHA1(password)) or no password. Not after a `client_ed25519` login.
    var canLogInAgain = false

    /// The greeting's scramble; `COM_CHANGE_USER` answers it again.
    var scramble: [UInt8] = []
    /// A `COM_CHANGE_USER` in progress (the relay is paused while it runs).
    var changeUser: ChangeUserStep?
    var changeUserDecoder = MySQLPacketDecoder(maxPayloadSize: 1 << 20)
    var changeUserInbound = ByteBuffer()

    enum ChangeUserStep {
        /// The client must answer an AuthSwitchRequest (sequence id 2) for `scramble`.
        case awaitingClientAnswer(Packets.ChangeUser, scramble: [UInt8])
        /// The proxy looks the account up.
        case verifying
        /// An ed25519 account: the backend was sent an empty answer and must send its client_ed25519
        /// challenge (or an ERR), which goes to the client as an AuthSwitchRequest (sequence id 1).
        case awaitingBackendChallenge(Packets.ChangeUser)
        /// The client must sign `challenge` (its answer has sequence id 2); the backend expects the verified
        /// signature as `backendSequence`.
        case awaitingClientSignature(Packets.ChangeUser, challenge: [UInt8], backendSequence: UInt8)
        /// The backend runs its own change of user; its final OK or ERR goes to the client as `clientSequence`.
        case awaitingBackend(Packets.ChangeUser, passwordSHA1: [UInt8]?, clientSequence: UInt8)
        /// The proxy refused; the backend was sent a change of user it must refuse too (so that it resets the
        /// session and keeps the old user, as MariaDB does). Its ERR goes to the client as `clientSequence`:
        /// `refusal` in place of a 1045, any other (1047 after three failures) as it is.
        case awaitingBackendRefusal(Packets.ChangeUser, refusal: Packets.ErrorPacket, clientSequence: UInt8)
    }

    /// With `FastRelay`: the state of the handover.
    var fast = FastRelayLink()

    /// - Parameter descriptor: a duplicate of the client socket's descriptor, which the session then owns.
    init(environment: Environment, descriptor: Int32? = nil) {
        self.environment = environment
        self.fast.clientDescriptor = descriptor
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
        let bound = NIOLoopBound(self, eventLoop: loop)
        guard
            let id = environment.state.register(
                limit: settings.maxConnections,
                { _ in
                    ProxyState.SessionHandle(
                        user: "", eventLoop: loop, backend: nil, backendThreadID: nil,
                        shutDown: { loop.submit { bound.value.shutDownClient() } })
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
        handshakeTimeout = context.eventLoop.assumeIsolated().scheduleTask(in: .init(settings.handshakeTimeout)) {
            [weak self] in
            self?.handshakeTimedOut()
        }
        perform(action)
    }

    /// What the proxy offers clients: everything it relays faithfully and MariaDB 10.11 supports.
    /// Metadata caching is not offered. Compression is the client hop's own (the
    /// backend hop is never compressed).
    static let advertisedCapabilities: CapabilityFlags = [
        .longFlag, .foundRows, .connectWithDB, .noSchema, .odbc, .localFiles, .ignoreSpace, .protocol41,
        .interactive, .ignoreSigpipe, .transactions, .secureConnection, .multiStatements, .multiResults,
        .psMultiResults, .pluginAuth, .connectAttributes, .pluginAuthLengthEncodedClientData,
        .canHandleExpiredPasswords, .sessionTrack, .deprecateEOF, .mariaDBStatementBulkOperations,
        .mariaDBExtendedTypeInfo, .mariaDBProgress, .compress,
    ]

    /// Capabilities that belong to one hop only and are not passed on to the backend as the client's.
    static let perHop: CapabilityFlags = [.ssl, .compress, .connectWithDB, .connectAttributes]

    static func makeScramble() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<20).map { _ in UInt8.random(in: 33...126, using: &generator) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        if fast.relayed != nil {
            keepLateBytes(buffer, fromBackend: false)
            return
        }
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
        readInbound(context: context)
    }

    /// Handles the client bytes waiting in `inbound` as far as the phase allows: after a read, and when the
    /// session returns to the command phase (login, move, change of user) with commands waiting.
    func readInbound(context: ChannelHandlerContext) {
        switch phase {
        case .handshake:
            readHandshake(context: context)
        case .command:
            readCommands(context: context)
        case .connectingBackend, .movingBackend:
            break  // read once the backend is logged in (a well-behaved client waits for the login's OK)
        case .closed:
            inbound = ByteBuffer()
        }
        // Framed bytes are not held on to: the read buffer can then be reused for the next read.
        if inbound.readableBytes == 0 { inbound = ByteBuffer() }
    }

    /// Adds client bytes to what is still to be framed: the read buffer itself when nothing is pending
    /// (no copy), else appended; bytes already framed are dropped so a long session does not grow it.
    func appendInbound(_ bytes: ByteBuffer) {
        if inbound.readableBytes == 0 {
            inbound = bytes
            return
        }
        if inbound.readerIndex > 1 << 16 { inbound.discardReadBytes() }
        inbound.writeImmutableBuffer(bytes)
    }

    func readHandshake(context: ChannelHandlerContext) {
        do {
            while case .handshake(var machine) = phase, let packet = try decoder.decode(buffer: &inbound) {
                let action = machine.packetReceived(packet)
                phase = .handshake(machine)
                perform(action)
            }
        } catch {
            guard case .handshake(let machine) = phase else { return }
            badPacket(error, sequenceID: machine.nextSequenceID)
        }
    }

    func perform(_ action: ServerHandshakeStateMachine.Action) {
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

    func startTLS(context: ChannelHandlerContext) {
        guard let serverTLS = environment.serverTLS else { return }
        do {
            try TLSFastPath.addTLSHandler(
                NIOSSLServerHandler(context: serverTLS.current()), role: .server,
                secrets: environment.tlsSecrets, to: context.pipeline.syncOperations)
        } catch {
            logger.error("cannot start TLS: \(error)")
            close()
            return
        }
        // Bytes that came with the SSLRequest are the start of the TLS handshake: give them to TLS.
        if inbound.readableBytes > 0 {
            let early = inbound
            inbound = ByteBuffer()
            context.pipeline.syncOperations.fireChannelRead(NIOAny(early))
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event, case .handshake(var machine) = phase {
            noteClientCertificate(context: context)
            let action = machine.tlsEstablished()
            phase = .handshake(machine)
            perform(action)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func lookUpCredential(_ username: String) {
        guard case .handshake(let machine) = phase, let context else { return }
        let settings = environment.settings
        if let networks = settings.userNetworks[username], !networks.contains(where: { $0.contains(clientAddress) }) {
            logger.notice(
                "login refused: address not in the user's allowed networks", metadata: ["user": "\(username)"])
            deny(machine, username: username)
            return
        }
        if isThrottled(username) {
            let blocked = throttledError
            environment.metrics.error(blocked.errorCode)
            refuse(
                errno: blocked.errorCode, sqlState: blocked.sqlState, blocked.message,
                sequenceID: machine.nextSequenceID)
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
        lookup.assumeIsolated().whenSuccess { [weak self] account in
            guard let self, case .handshake(var machine) = self.phase else { return }
            if let account, account.plugin == MariaDBEd25519.serverPluginName,
                Self.loginRefusal(account, tls: tls, certificates: certificates) == nil,
                machine.answeredPlugin != MariaDBEd25519().name, let response = machine.pendingResponse
            {
                // The proxy cannot sign for the user: the server's own challenge goes to the client, whose
                // signature the proxy verifies with the stored public key before handing it on.
                self.startBackendLogin(
                    BackendLoginRequest(
                        username: response.username, database: response.database,
                        capabilities: response.capabilities.negotiated(with: machine.settings.capabilities),
                        collation: response.collation,
                        attributes: Dictionary(response.attributes, uniquingKeysWith: { _, last in last }),
                        passwordSHA1: nil, failureSequenceID: machine.nextSequenceID))
                return
            }
            var credential = account.flatMap(Self.credential)
            if let account, let refusal = Self.loginRefusal(account, tls: tls, certificates: certificates) {
                self.logger.notice("login refused: \(refusal)", metadata: ["user": "\(username)"])
                credential = nil
            }
            if let account, credential == nil, Self.loginRefusal(account, tls: tls, certificates: certificates) == nil {
                self.logger.notice(
                    "login refused: the account's auth plugin is not supported by the proxy",
                    metadata: ["user": "\(username)", "plugin": "\(account.plugin)"])
            }
            let action = machine.credentialLookedUp(
                credential, withoutPassword: account?.plugin == Self.socketPeerPlugin)
            self.phase = .handshake(machine)
            if case .authenticated = action {
                self.clearFailedLogins(username)
            } else if case .failAndClose = action {
                self.recordFailedLogin(username)
            }
            self.perform(action)
        }
    }

    // MARK: failed-login throttling (logins and changes of user alike)

    /// Whether `username` from this client has failed too often within the throttle window.
    func isThrottled(_ username: String) -> Bool {
        let settings = environment.settings
        return environment.state.isThrottled(
            "\(username)@\(clientAddress)", max: settings.authThrottleMaxFailures,
            window: settings.authThrottleWindow, now: .now)
    }

    func recordFailedLogin(_ username: String) {
        environment.state.recordFailedLogin(
            "\(username)@\(clientAddress)", max: environment.settings.authThrottleMaxFailures, now: .now)
    }

    func clearFailedLogins(_ username: String) {
        environment.state.clearFailedLogins("\(username)@\(clientAddress)")
    }

    /// What a throttled user is told (MariaDB's errno for an account blocked by `max_password_errors`).
    var throttledError: Packets.ErrorPacket {
        Packets.ErrorPacket(
            errorCode: 4151, sqlState: "HY000",
            message:
                "User is blocked because of too many credential errors; retry after \(environment.settings.authThrottleWindow)"
        )
    }

    /// Answers as for a wrong password.
    func deny(_ machine: ServerHandshakeStateMachine, username: String) {
        var machine = machine
        let action = machine.credentialLookedUp(nil)
        phase = .handshake(machine)
        perform(action)
    }

    func loginFailed(_ packet: MySQLPacket, _ error: Packets.ErrorPacket) {
        environment.metrics.error(error.errorCode)
        if error.errorCode == 1045 { environment.metrics.failedLogin() }
        logger.notice("login failed", metadata: ["errno": "\(error.errorCode)", "error": "\(error.message)"])
        write(packet, flush: true)
        close()
    }

    // MARK: command phase

    func readCommands(context: ChannelHandlerContext) {
        guard inbound.readableBytes > 0, backendReadyForNextCommand(), let backend else { return }
        var wrote = false
        do {
            while case .command = phase, changeUser == nil || isAwaitingClientAnswer {
                let unframed = inbound
                guard let packet = try decoder.decode(buffer: &inbound) else { break }
                // The packet's own bytes, header included, when it came as one chunk: forwarded as they
                // are unless the proxy has to change them. (Taken from the buffer as it was before
                // decoding: a ByteBuffer gives no slices of bytes already read.)
                let wire =
                    inbound.readerIndex - unframed.readerIndex == packet.payload.readableBytes + 4
                    ? unframed.getSlice(at: unframed.readerIndex, length: packet.payload.readableBytes + 4) : nil
                if isAwaitingClientAnswer {
                    changeUserAnswerReceived(packet, backend: backend)
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
    func forward(_ packet: MySQLPacket, wire: ByteBuffer?, to backend: Backend) -> Bool {
        killedSessions = []
        if relay.sendingLocalFile {
            var packet = packet
            packet.sequenceID = relay.localFilePacket(length: packet.payload.readableBytes)
            send(packet, to: backend)
            return true
        }
        if relay.pending.first?.isBinlogStream == true {
            // A semi-synchronous replica acknowledges events on the connection of its binlog dump, which the
            // server reads as they are (a command byte would not be read as a command there either).
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
            guard let target = mapKillTarget(id, connection: true, on: backend) else { return false }
            var kill = ByteBuffer()
            kill.writeInteger(command.rawValue)
            kill.writeInteger(target, endianness: .little)
            packet.payload = kill
            rewritten = true
        default:
            switch relay.check(
                command, payload: packet.payload, connectionID: connectionID,
                killTarget: { id, connection in self.mapKillTarget(id, connection: connection, on: backend) })
            {
            case .send(let payload?):
                packet.payload = payload
                rewritten = true
            case .send(nil):
                break
            case .refuse(let refusal):
                logger.notice("ending the session: \(refusal.message)")
                refuse(errno: refusal.errorCode, sqlState: refusal.sqlState, refusal.message, sequenceID: 1)
                return false
            case .answered:
                return false
            }
        }
        // With nothing else pending, the next answer is this command's.
        if relay.isIdle, !killedSessions.isEmpty {
            heldAnswer = HeldAnswer(kind: .kill(killedSessions))
        } else if command == .query, relay.isIdle, ProcessListIDs.listsThreads(packet.payload) {
            heldAnswer = HeldAnswer(kind: .processList)
        } else if command == .query, relay.isIdle, compression != nil, SessionStatus.listsStatus(packet.payload) {
            heldAnswer = HeldAnswer(kind: .sessionStatus)
        }
        killedSessions = []
        relay.sent(command, payload: packet.payload, capabilities: backend.session?.capabilities ?? [])
        if let wire, !rewritten, compression == nil {
            backend.channel.write(wire, promise: nil)  // the client's bytes as they came: no copy
        } else {
            send(packet, to: backend)
        }
        return true
    }

    /// The backend thread of the proxy session `id`, for KILL (of its `connection`, or of its statement);
    /// nil (after answering ERR 1094) when there is no such session or it is not on this session's server.
    func mapKillTarget(_ id: UInt32, connection: Bool, on backend: Backend) -> UInt32? {
        if let target = environment.state.session(id), let thread = target.backendThreadID,
            target.backend == backend.server
        {
            // When its server connection goes, that session must end with it rather than move.
            environment.state.update(id) { $0.killRequested = true }
            if connection, id != connectionID { killedSessions.append(id) }
            return thread
        }
        reply(errno: 1094, sqlState: "HY000", "Unknown thread id: \(id)", sequenceID: 1)
        return nil
    }

    func send(_ packet: MySQLPacket, to backend: Backend) {
        var out = backend.channel.allocator.buffer(capacity: packet.payload.readableBytes + 4)
        MySQLPacketEncoder.write(packet, into: &out)
        backend.channel.write(out, promise: nil)
    }

    func backendWritabilityChanged(_ writable: Bool) {
        // Client uploads (LOAD DATA, long data) pause while the backend's socket is full.
        context?.channel.setOption(ChannelOptions.autoRead, value: writable).whenFailure { _ in }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        // Results pause at the backend while the client reads slower than the server sends.
        backend?.channel.setOption(ChannelOptions.autoRead, value: context.channel.isWritable).whenFailure { _ in }
        context.fireChannelWritabilityChanged()
    }

    /// Shuts the client socket down (a KILL named this session and the server has ended its connection):
    /// the client sees it closed before the KILL's OK reaches whoever sent it, as with a server.
    func shutDownClient() {
        if let descriptor = fast.clientDescriptor { _ = Glibc.shutdown(descriptor, Int32(SHUT_RDWR)) }
        close()
    }

    func backendClosed() {
        if fast.relayed != nil {
            reclaimFromFastRelay { [self] in backendClosed() }
            return
        }
        guard case .command = phase, !backendLostBetweenStatements() else { return }
        logger.notice(
            "backend connection lost; closing the client session",
            metadata: ["server": "\(backend?.server.name ?? "?")", "pending_responses": "\(relay.pending.count)"])
        backend = nil
        close()
    }

    // MARK: errors and closing

    func badPacket(_ error: any Error, sequenceID: UInt8) {
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
    func reply(errno: UInt16, sqlState: String, _ message: String, sequenceID: UInt8) {
        environment.metrics.error(errno)
        write(errorPacket(errno: errno, sqlState: sqlState, message, sequenceID: sequenceID), flush: true)
    }

    /// Sends an ERR, then closes.
    func refuse(errno: UInt16, sqlState: String, _ message: String, sequenceID: UInt8 = 0) {
        write(errorPacket(errno: errno, sqlState: sqlState, message, sequenceID: sequenceID), flush: true)
        close()
    }

    func errorPacket(errno: UInt16, sqlState: String, _ message: String, sequenceID: UInt8) -> MySQLPacket {
        var payload = ByteBuffer()
        Packets.ErrorPacket(errorCode: errno, sqlState: sqlState, message: message).encode(
            into: &payload, capabilities: [.protocol41])
        return MySQLPacket(sequenceID: sequenceID, payload: payload)
    }

    func write(_ packet: MySQLPacket, flush: Bool) {
        guard let context else { return }
        var out = context.channel.allocator.buffer(capacity: packet.payload.readableBytes + 4)
        MySQLPacketEncoder.write(packet, into: &out)
        emit(out, context: context)
        if flush { context.flush() }
    }

    /// Writes ordinary packet bytes to the client, wrapped in compressed packets once compression is on.
    func emit(_ bytes: ByteBuffer, context: ChannelHandlerContext) {
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

    /// Whether the session leaves its server connection with COM_QUIT now (it is between commands). While
    /// the fast relay carries the session, the relay's state decides, and the quit is said when it gives the
    /// session back.
    func quitsOnLeaving() -> Bool {
        guard case .command = phase, changeUser == nil else { return false }
        if fast.relayed != nil {
            fast.quitOnReturn = true
            return false
        }
        return relay.isIdle
    }

    func close() {
        guard let context else { return }
        if case .closed = phase, !context.channel.isActive { return }
        let quit = quitsOnLeaving()
        phase = .closed
        handshakeTimeout?.cancel()
        handshakeTimeout = nil
        if let backend {
            self.backend = nil
            backend.handler.detachFromSession(channel: backend.channel, quit: quit)
        }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        let quit = quitsOnLeaving()
        phase = .closed
        handshakeTimeout?.cancel()
        if let backend {
            self.backend = nil
            backend.handler.detachFromSession(channel: backend.channel, quit: quit)
        }
        if let descriptor = fast.clientDescriptor {
            // The client's connection ends now, before the session leaves the registry, even while the fast
            // relay still holds the duplicate: a KILL's OK, which waits only for sessions still registered,
            // must not reach the killer before the killed client can see its connection closed.
            _ = Glibc.shutdown(descriptor, Int32(SHUT_RDWR))
        }
        if registered {
            registered = false
            environment.state.unregister(connectionID)
        }
        if let descriptor = fast.clientDescriptor {
            fast.clientDescriptor = nil
            releaseDescriptor(descriptor)
        }
        environment.metrics.connectionClosed()
        self.context = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let tls = error as? NIOSSLError, case .uncleanShutdown = tls {
            logger.debug("client closed TLS without close_notify")  // common and harmless after COM_QUIT
        } else if let io = error as? IOError, io.errnoCode == ECONNRESET || io.errnoCode == EPIPE {
            logger.debug("client reset the connection")  // it went away; nothing to report
        } else {
            logger.notice("client connection error: \(error)")
        }
        close()
    }

    func isTLS(_ context: ChannelHandlerContext) -> Bool {
        (try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self)) != nil
            || (try? context.pipeline.syncOperations.handler(type: TLSRecordHandler.self)) != nil
    }

    /// Moves a hop's TLS records from NIOSSL to the fast path, on the next turn of the event loop (never
    /// inside NIOSSL's own callbacks). A hop that cannot switch keeps working on NIOSSL.
    func startTLSFastPath(_ channel: any Channel, hop: String) {
        let metrics = environment.metrics
        let logger = self.logger
        channel.eventLoop.assumeIsolated().execute {
            guard channel.isActive else { return }
            switch TLSFastPath.takeOver(channel.pipeline.syncOperations) {
            case .success(let handler):
                metrics.tlsFastPath(hop: hop, active: true)
                logger.debug(
                    "TLS fast path on",
                    metadata: [
                        "hop": "\(hop)", "version": "\(handler.version)", "cipher_suite": "\(handler.cipherSuite.id)",
                    ])
            case .failure(let reason):
                metrics.tlsFastPath(hop: hop, active: false)
                logger.info(
                    "TLS fast path unavailable; the hop stays on NIOSSL",
                    metadata: ["hop": "\(hop)", "reason": "\(reason)"])
            }
        }
    }

    func tlsVersion(_ context: ChannelHandlerContext) -> String {
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
