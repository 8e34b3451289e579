package import Logging
import Metrics
import MySQLWire
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import SQLProxy
import Topology

/// Drives one whole `ClientSession` over in-memory channels: it logs a client in (a `mysql_native_password`
/// account from an `AccountDirectory`), plays the database server on every backend connection the session
/// opens (a HandshakeV10 greeting without TLS and an OK for each login), and then feeds the session bytes
/// from both sides, as a fuzzer or a test dictates. Afterwards it checks what a user relies on when a peer
/// misbehaves: only that session ends, it leaves nothing registered and no backend connection open, and it
/// writes nothing to the client after it closed the connection.
package enum SessionDriver {
    package enum Side: Sendable, Hashable {
        case client
        case server
    }

    package enum Step: Sendable, Hashable {
        /// Bytes as they arrive on the side's socket (the current backend connection for the server).
        case send(Side, [UInt8])
        /// The side's peer closes its connection.
        case close(Side)
    }

    /// How the client logs in.
    package struct ClientOptions: Sendable, Hashable {
        package var deprecateEOF = true
        package var compress = false
        package var multiStatements = true

        package init(deprecateEOF: Bool = true, compress: Bool = false, multiStatements: Bool = true) {
            self.deprecateEOF = deprecateEOF
            self.compress = compress
            self.multiStatements = multiStatements
        }
    }

    package struct Outcome: Sendable {
        /// What the client received after the login's OK.
        package var toClient: [UInt8]
        /// The session closed the client connection itself (not the driver, for a `.close(.client)` step).
        package var sessionClosedClient: Bool
        /// How many backend connections the session opened (more than one: it moved).
        package var backendsOpened: Int
        /// Broken invariants, in words; empty when the session behaved.
        package var violations: [String]
    }

    package struct DriverError: Error, CustomStringConvertible {
        package var description: String
    }

    static let user = "fuzz"
    static let password = "fuzz-password"
    static let serverCapabilities: CapabilityFlags = [
        .longPassword, .longFlag, .foundRows, .connectWithDB, .noSchema, .odbc, .localFiles, .ignoreSpace,
        .protocol41, .interactive, .ignoreSigpipe, .transactions, .secureConnection, .multiStatements,
        .multiResults, .psMultiResults, .pluginAuth, .connectAttributes, .pluginAuthLengthEncodedClientData,
        .canHandleExpiredPasswords, .sessionTrack, .deprecateEOF, .mariaDBStatementBulkOperations,
        .mariaDBExtendedTypeInfo, .mariaDBProgress,
    ]

    /// Reads a fuzzer's input as login options and steps. The first byte picks the options; then each step
    /// is a flags byte and, unless it closes a side, a length byte and that many bytes. Flags: bit 0 the
    /// side (server when set); bit 1 a plausible packet header goes first (sequence id 1 with bit 2, else
    /// 0); bits 3 to 5 all set close the side instead.
    package static func script(fromFuzzInput input: [UInt8]) -> (ClientOptions, [Step]) {
        guard let first = input.first else { return (ClientOptions(), []) }
        let options = ClientOptions(
            deprecateEOF: first & 1 == 0, compress: first & 2 != 0, multiStatements: first & 4 == 0)
        var steps: [Step] = []
        var index = 1
        while index < input.count {
            let flags = input[index]
            index += 1
            let side: Side = flags & 1 == 0 ? .client : .server
            if flags & 0x38 == 0x38 {
                steps.append(.close(side))
                continue
            }
            guard index < input.count else { break }
            let length = min(Int(input[index]), input.count - index - 1)
            index += 1
            var bytes = Array(input[index..<index + length])
            index += length
            if flags & 2 != 0 { bytes = packet(bytes, sequenceID: flags & 4 != 0 ? 1 : 0) }
            steps.append(.send(side, bytes))
        }
        return (options, steps)
    }

    /// `payload` with a packet header.
    package static func packet(_ payload: [UInt8], sequenceID: UInt8) -> [UInt8] {
        var out = ByteBuffer()
        MySQLPacketEncoder.write(MySQLPacket(sequenceID: sequenceID, payload: ByteBuffer(bytes: payload)), into: &out)
        return Array(out.readableBytesView)
    }

    /// Logs a client in, runs `steps`, closes the client if the session has not, and reports.
    package static func run(
        _ steps: [Step], options: ClientOptions = ClientOptions(),
        logger: Logger = Logger(label: "session-driver", factory: { _ in SwiftLogNoOpLogHandler() })
    ) async throws -> Outcome {
        let run = try await DrivenSession.start(options: options, logger: logger)
        for step in steps {
            guard run.client.isActive else { break }
            try await run.perform(step)
            try await run.serveNewBackends()
            run.checkWhileOpen()
        }
        return try await run.finish()
    }
}

/// One session being driven: the client channel, the backend channels in the order the session opened
/// them, and what has gone wrong so far.
final class DrivenSession: Sendable {
    let loop: NIOAsyncTestingEventLoop
    let state: ProxyState
    let client: NIOAsyncTestingChannel
    let wire: NIOLockedValueBox<ClientWire>
    let backends: NIOLockedValueBox<[NIOAsyncTestingChannel]>
    /// The session handler, to see that it is freed once its connections are closed.
    let handler: WeakHandler
    /// Backends whose login the fake server has answered, and where the client's bytes after login start.
    private let progress = NIOLockedValueBox((served: 0, loginEnd: 0, clientHungUp: false, violations: [String]()))

    private init(
        loop: NIOAsyncTestingEventLoop, state: ProxyState, client: NIOAsyncTestingChannel,
        wire: NIOLockedValueBox<ClientWire>, backends: NIOLockedValueBox<[NIOAsyncTestingChannel]>,
        handler: WeakHandler
    ) {
        self.handler = handler
        self.loop = loop
        self.state = state
        self.client = client
        self.wire = wire
        self.backends = backends
    }

    static let address = try! SocketAddress(ipAddress: "127.0.0.1", port: 3306)

    static func start(options: SessionDriver.ClientOptions, logger: Logger) async throws -> DrivenSession {
        let loop = NIOAsyncTestingEventLoop()
        let state = ProxyState()
        state.setPrimary(ServerIdentity(name: "db", host: "127.0.0.1", port: 3306))
        var settings = ProxySettings()
        settings.maxPacketSize = 1 << 16
        settings.failoverHold = .zero
        let account = Account(
            user: SessionDriver.user, host: "%", plugin: "mysql_native_password",
            authenticationString: MySQLNativePassword.authenticationString(password: SessionDriver.password))
        let accounts = AccountDirectory { AccountTable(accounts: [account], resolvesNames: false) }
        let backends = NIOLockedValueBox<[NIOAsyncTestingChannel]>([])
        let connector: BackendConnector = { _, _, initialize in
            let channel = NIOAsyncTestingChannel(loop: loop)
            return initialize(channel).flatMap { channel.connect(to: address) }.map {
                // Seen by the driver only once it is ready for the greeting.
                backends.withLockedValue { $0.append(channel) }
                return channel
            }
        }
        let wire = NIOLockedValueBox(ClientWire())
        let client = NIOAsyncTestingChannel(loop: loop)
        let sessionSettings = settings
        let handler = WeakHandler()
        try await loop.executeInContext {
            let session = DetachedClientSession.handler(
                settings: sessionSettings, state: state, accounts: accounts,
                metrics: ProxyMetrics(factory: NOOPMetricsHandler.instance), logger: logger,
                backendConnector: connector)
            handler.value = session
            try client.pipeline.syncOperations.addHandler(ClientWireRecorder(wire))
            try client.pipeline.syncOperations.addHandler(session)
        }
        let run = DrivenSession(
            loop: loop, state: state, client: client, wire: wire, backends: backends, handler: handler)
        try await client.connect(to: address).get()
        await loop.run()
        try await run.logIn(options)
        return run
    }

    /// The client's side of the login, with the fake server's answers in between.
    private func logIn(_ options: SessionDriver.ClientOptions) async throws {
        var received = ByteBuffer(bytes: wire.withLockedValue { $0.bytes })
        var decoder = MySQLPacketDecoder()
        guard let packet = try decoder.decode(buffer: &received) else { throw failure("no greeting") }
        let greeting = try Packets.HandshakeV10.decode(packet.payload)
        var capabilities: CapabilityFlags = [
            .protocol41, .secureConnection, .pluginAuth, .longFlag, .transactions, .multiResults, .psMultiResults,
            .sessionTrack, .pluginAuthLengthEncodedClientData,
        ]
        if options.deprecateEOF { capabilities.insert(.deprecateEOF) }
        if options.compress { capabilities.insert(.compress) }
        if options.multiStatements { capabilities.insert(.multiStatements) }
        var response = ByteBuffer()
        Packets.HandshakeResponse41(
            capabilities: capabilities, collation: 45, username: SessionDriver.user,
            authResponse: MySQLNativePassword.response(
                password: SessionDriver.password, scramble: Array(greeting.scramble.prefix(20))),
            authPluginName: "mysql_native_password"
        ).encode(into: &response)
        try await client.writeInbound(
            ByteBuffer(bytes: SessionDriver.packet(Array(response.readableBytesView), sequenceID: 1)))
        // The account lookup runs off the event loop: wait for the session to open its backend connection.
        try await waitUntil("the backend connection opens") {
            backends.withLockedValue { !$0.isEmpty } || !client.isActive
        }
        try await serveNewBackends()
        let loginBytes = wire.withLockedValue { $0.bytes }
        received = ByteBuffer(bytes: loginBytes)
        decoder = MySQLPacketDecoder()
        _ = try decoder.decode(buffer: &received)
        guard let ok = try decoder.decode(buffer: &received),
            ok.payload.getInteger(at: ok.payload.readerIndex, as: UInt8.self) == 0, ok.sequenceID == 2
        else { throw failure("the client got no OK for its login") }
        progress.withLockedValue { $0.loginEnd = loginBytes.count - received.readableBytes }
    }

    /// Answers the login of every backend connection the session opened since the last call.
    func serveNewBackends() async throws {
        while true {
            let (served, channels) = (progress.withLockedValue { $0.served }, backends.withLockedValue { $0 })
            guard served < channels.count else { return }
            progress.withLockedValue { $0.served += 1 }
            try await serveLogin(on: channels[served], threadID: UInt32(100 + served))
        }
    }

    private func serveLogin(on backend: NIOAsyncTestingChannel, threadID: UInt32) async throws {
        guard backend.isActive else { return }
        var greeting = ByteBuffer()
        Packets.HandshakeV10(
            serverVersion: "5.5.5-10.11.6-MariaDB", connectionID: threadID, scramble: Array(1...20),
            capabilities: SessionDriver.serverCapabilities, collation: 45, status: [.autocommit],
            authPluginName: "mysql_native_password"
        ).encode(into: &greeting)
        try await backend.writeInbound(
            ByteBuffer(bytes: SessionDriver.packet(Array(greeting.readableBytesView), sequenceID: 0)))
        await loop.run()
        var sent = ByteBuffer()
        while let more = try await backend.readOutbound(as: ByteBuffer.self) { sent.writeImmutableBuffer(more) }
        var decoder = MySQLPacketDecoder()
        guard let login = try decoder.decode(buffer: &sent) else { throw failure("the proxy sent no login") }
        let response = try Packets.HandshakeResponse41.decode(
            login.payload, serverCapabilities: SessionDriver.serverCapabilities)
        guard response.username == SessionDriver.user, login.sequenceID == 1 else {
            throw failure("the proxy logged in as \(response.username) with id \(login.sequenceID)")
        }
        var ok = ByteBuffer()
        Packets.OKPacket().encode(into: &ok, capabilities: response.capabilities)
        try await backend.writeInbound(
            ByteBuffer(bytes: SessionDriver.packet(Array(ok.readableBytesView), sequenceID: 2)))
        await loop.run()
    }

    func perform(_ step: SessionDriver.Step) async throws {
        switch step {
        case .send(.client, let bytes):
            _ = try? await client.writeInbound(ByteBuffer(bytes: bytes))
        case .send(.server, let bytes):
            guard let backend = currentBackend, backend.isActive else { return }
            _ = try? await backend.writeInbound(ByteBuffer(bytes: bytes))
        case .close(.client):
            progress.withLockedValue { $0.clientHungUp = true }
            try? await client.close().get()
        case .close(.server):
            guard let backend = currentBackend, backend.isActive else { return }
            try? await backend.close().get()
        }
        // A real event loop runs what the session queued for later (`execute`) at once; this one on request.
        await loop.run()
        // What the session sent the server is not looked at; it is dropped so it does not pile up.
        for backend in backends.withLockedValue({ $0 }) {
            while (try? await backend.readOutbound(as: ByteBuffer.self)) ?? nil != nil {}
        }
        while (try? await client.readOutbound(as: ByteBuffer.self)) ?? nil != nil {}
    }

    var currentBackend: NIOAsyncTestingChannel? { backends.withLockedValue { $0.last } }

    /// While the client's connection is open: the session is registered, and has at most one backend.
    func checkWhileOpen() {
        guard client.isActive else { return }
        if state.sessionCount != 1 { violation("\(state.sessionCount) sessions registered while the client is open") }
        let open = backends.withLockedValue { $0.filter(\.isActive).count }
        if open > 1 { violation("\(open) backend connections open at once") }
    }

    /// Closes the client (if the session has not) and checks that the session left nothing behind.
    func finish() async throws -> SessionDriver.Outcome {
        let sessionClosedClient = !client.isActive && !progress.withLockedValue { $0.clientHungUp }
        if sessionClosedClient, !wire.withLockedValue({ $0.closeRequested }) {
            violation("the client connection closed without the session closing it")
        }
        try? await client.close().get()
        await loop.run()
        if state.sessionCount != 0 { violation("\(state.sessionCount) sessions still registered after the close") }
        let open = backends.withLockedValue { $0.filter(\.isActive).count }
        if open > 0 { violation("\(open) backend connections left open after the session ended") }
        let wire = self.wire.withLockedValue { $0 }
        if wire.writesAfterClose > 0 { violation("\(wire.writesAfterClose) writes to the client after its close") }
        _ = try? await client.finish(acceptAlreadyClosed: true)
        for backend in backends.withLockedValue({ $0 }) { _ = try? await backend.finish(acceptAlreadyClosed: true) }
        await loop.run()
        let handler = self.handler
        if try await loop.executeInContext({ handler.value != nil }) {
            violation("the session object outlived its closed connections")
        }
        let progress = self.progress.withLockedValue { $0 }
        return SessionDriver.Outcome(
            toClient: Array(wire.bytes[progress.loginEnd...]), sessionClosedClient: sessionClosedClient,
            backendsOpened: backends.withLockedValue { $0.count }, violations: progress.violations)
    }

    private func violation(_ text: String) {
        progress.withLockedValue { $0.violations.append(text) }
    }

    private func failure(_ text: String) -> SessionDriver.DriverError {
        SessionDriver.DriverError(description: text)
    }

    /// Waits for work the session does off the event loop (account lookups), for at most ten seconds.
    private func waitUntil(_ what: String, _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        var rounds = 0
        while !condition() {
            guard ContinuousClock.now < deadline else { throw failure("timed out waiting until \(what)") }
            rounds += 1
            if rounds < 100 { await Task.yield() } else { try await Task.sleep(for: .microseconds(200)) }
        }
    }
}

/// A weak reference to the session handler. `@unchecked Sendable`: it is set and read only inside
/// `executeInContext` closures, which run one at a time on the event loop's queue.
final class WeakHandler: @unchecked Sendable {
    weak var value: (any ChannelHandler)?
}
