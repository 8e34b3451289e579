import CoreMetrics
import Logging
import MySQLWire
import NIOCore
import NIOPosix
import Synchronization
import Testing
import Topology

@testable import SQLProxy

/// `COM_CHANGE_USER` through a real session on loopback, against a scripted backend that checks passwords
/// as MariaDB does: a refusal (the proxy's or the backend's) answers 1045 and keeps the session and its
/// old user, on the proxy and on the backend.
@Suite(.timeLimit(.minutes(1)))
struct ClientSessionChangeUserTests {
    @Test("A wrong password: ERR 1045 (id 1), the backend refuses it too, the session goes on as the old user")
    func proxyRefusal() async throws {
        try await Harness.with(backendPasswords: ["app": "app-pw", "other": "other-pw"]) { harness, client in
            #expect(try await client.query() == "app")
            let refusal = try await client.changeUser("other", password: "wrong")
            #expect(refusal.sequenceID == 1)
            let error = try Packets.ErrorPacket.decode(refusal.payload, capabilities: [.protocol41])
            #expect(error.errorCode == 1045)
            #expect(error.sqlState == "28000")
            #expect(error.message == "Access denied for user 'other'@'127.0.0.1' (using password: YES)")
            // The backend was sent a change of user it refused (it resets its session as MariaDB does), never
            // one it could accept, and kept the old user.
            let attempts = harness.backend.changeUsers()
            #expect(attempts.map(\.username) == ["other"])
            #expect(attempts.first?.accepted == false)
            #expect(harness.backend.currentUser() == "app")
            #expect(harness.state.allSessions().map(\.user) == ["app"])
            #expect(harness.metrics.totals().failedLogins == 1)

            // The same session still relays, as the old user, and can change user afterwards.
            #expect(try await client.query() == "app")
            let ok = try await client.changeUser("other", password: "other-pw")
            #expect(ok.payload.getInteger(at: ok.payload.readerIndex, as: UInt8.self) == 0x00)
            #expect(try await client.query() == "other")
            #expect(harness.state.allSessions().map(\.user) == ["other"])
        }
    }

    @Test("The backend refuses a change of user the proxy verified: its ERR, and the session goes on as the old user")
    func backendRefusal() async throws {
        // The backend's password for `other` changed after the proxy read the accounts.
        try await Harness.with(backendPasswords: ["app": "app-pw", "other": "changed-pw"]) { harness, client in
            let refusal = try await client.changeUser("other", password: "other-pw")
            #expect(refusal.sequenceID == 1)
            let error = try Packets.ErrorPacket.decode(refusal.payload, capabilities: [.protocol41])
            #expect(error.errorCode == 1045)
            #expect(harness.backend.currentUser() == "app")
            #expect(harness.state.allSessions().map(\.user) == ["app"])
            #expect(harness.metrics.totals().failedLogins == 1)
            #expect(try await client.query() == "app")
        }
    }
}

/// A proxy session (real `ClientSession` on loopback), its scripted backend and a client logged in as `app`.
private struct Harness {
    let backend: FakeBackend
    let state: ProxyState
    let metrics: ProxyMetrics

    /// The proxy's own accounts: app/app-pw and other/other-pw.
    static let accounts = [("app", "app-pw"), ("other", "other-pw")].map { user, password in
        Account(
            user: user, host: "%", plugin: "mysql_native_password",
            authenticationString: MySQLNativePassword.authenticationString(password: password))
    }

    static func with(
        backendPasswords: [String: String], _ body: (Harness, inout TestClient) async throws -> Void
    ) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let backend = FakeBackend(passwords: backendPasswords)
        let backendChannel = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(FakeBackendHandler(backend: backend))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let state = ProxyState()
        state.setPrimary(.init(name: "fake", host: "127.0.0.1", port: backendChannel.localAddress?.port ?? 0))
        let metrics = ProxyMetrics(factory: NOOPMetricsHandler.instance)
        let accounts = Self.accounts
        let environment = ClientSession.Environment(
            settings: ProxySettings(), state: state,
            accounts: AccountDirectory { AccountTable(accounts: accounts, resolvesNames: false) }, serverTLS: nil,
            backendTLS: nil, metrics: metrics, logger: Logger(label: "test"))
        let proxyChannel = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ClientSession(environment: environment))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        do {
            let connection = try await ClientBootstrap(group: group).connect(
                host: "127.0.0.1", port: proxyChannel.localAddress?.port ?? 0
            ) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
            try await connection.executeThenClose { inbound, outbound in
                var client = TestClient(iterator: inbound.makeAsyncIterator(), outbound: outbound)
                try await client.logIn(user: "app", password: "app-pw")
                try await body(Harness(backend: backend, state: state, metrics: metrics), &client)
            }
        } catch {
            try? await proxyChannel.close()
            try? await backendChannel.close()
            try? await group.shutdownGracefully()
            throw error
        }
        try await proxyChannel.close()
        try await backendChannel.close()
        try await group.shutdownGracefully()
    }
}

/// A MySQL client for the test: raw packets over loopback.
private struct TestClient {
    var iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    var decoder = MySQLPacketDecoder()
    var received = ByteBuffer()
    var scramble: [UInt8] = []

    static let capabilities: CapabilityFlags = [.protocol41, .secureConnection, .pluginAuth, .longFlag, .transactions]

    init(
        iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator,
        outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    ) {
        self.iterator = iterator
        self.outbound = outbound
    }

    mutating func next() async throws -> MySQLPacket {
        while true {
            if let packet = try decoder.decode(buffer: &received) { return packet }
            guard var more = try await iterator.next() else { throw ChannelError.eof }
            received.writeBuffer(&more)
        }
    }

    func send(_ packet: MySQLPacket) async throws {
        var out = ByteBuffer()
        MySQLPacketEncoder.write(packet, into: &out)
        try await outbound.write(out)
    }

    mutating func logIn(user: String, password: String) async throws {
        scramble = try Packets.HandshakeV10.decode(try await next().payload).scramble
        var response = ByteBuffer()
        Packets.HandshakeResponse41(
            capabilities: Self.capabilities, collation: 45, username: user,
            authResponse: MySQLNativePassword.response(password: password, scramble: scramble), database: nil,
            authPluginName: "mysql_native_password"
        ).encode(into: &response)
        try await send(MySQLPacket(sequenceID: 1, payload: response))
        let ok = try await next()
        guard ok.payload.getInteger(at: ok.payload.readerIndex, as: UInt8.self) == 0x00 else {
            throw ChannelError.inputClosed
        }
    }

    /// COM_CHANGE_USER answering the greeting's scramble; returns the proxy's OK or ERR.
    mutating func changeUser(_ user: String, password: String) async throws -> MySQLPacket {
        var payload = ByteBuffer()
        Packets.ChangeUser(
            username: user, authResponse: MySQLNativePassword.response(password: password, scramble: scramble),
            database: "", collation: 45, authPluginName: "mysql_native_password"
        ).encode(into: &payload, capabilities: Self.capabilities)
        try await send(MySQLPacket(sequenceID: 0, payload: payload))
        return try await next()
    }

    /// Any COM_QUERY: the fake backend answers OK with its current user as the info text.
    mutating func query() async throws -> String {
        var payload = ByteBuffer()
        payload.writeInteger(Command.query.rawValue)
        payload.writeString("SELECT CURRENT_USER()")
        try await send(MySQLPacket(sequenceID: 0, payload: payload))
        return try Packets.OKPacket.decode(try await next().payload, capabilities: Self.capabilities).info
    }
}

/// What the scripted backend knows: its accounts, its current user and the changes of user it was sent.
private final class FakeBackend: Sendable {
    struct Attempt: Sendable {
        var username: String
        var accepted: Bool
    }

    let passwords: [String: String]
    private let state = Mutex<(user: String, attempts: [Attempt])>((user: "", attempts: []))

    init(passwords: [String: String]) { self.passwords = passwords }

    func currentUser() -> String { state.withLock { $0.user } }
    func changeUsers() -> [Attempt] { state.withLock { $0.attempts } }

    /// Checks a `mysql_native_password` answer as the server does; a change of user is recorded.
    func authenticate(_ user: String, response: [UInt8], scramble: [UInt8], changeUser: Bool) -> Bool {
        let accepted =
            passwords[user].map { MySQLNativePassword.response(password: $0, scramble: scramble) == response } ?? false
        state.withLock { state in
            if accepted { state.user = user }
            if changeUser { state.attempts.append(Attempt(username: user, accepted: accepted)) }
        }
        return accepted
    }
}

/// One backend connection: greeting, login, then OK (with the current user as info) to every query and
/// OK or ERR 1045 to every change of user.
private final class FakeBackendHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let backend: FakeBackend
    let scramble: [UInt8] = Array(repeating: 0x41, count: 20)
    var decoder = MySQLPacketDecoder()
    var received = ByteBuffer()
    var capabilities: CapabilityFlags?

    init(backend: FakeBackend) { self.backend = backend }

    func channelActive(context: ChannelHandlerContext) {
        var payload = ByteBuffer()
        Packets.HandshakeV10(
            serverVersion: "5.5.5-10.11.19-MariaDB", connectionID: 77, scramble: scramble,
            capabilities: ClientSession.advertisedCapabilities.subtracting([.compress]), collation: 45,
            status: [.autocommit], authPluginName: "mysql_native_password"
        ).encode(into: &payload)
        write(MySQLPacket(sequenceID: 0, payload: payload), context: context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        received.writeBuffer(&bytes)
        while let packet = try? decoder.decode(buffer: &received) {
            guard let capabilities else {
                guard
                    let login = try? Packets.HandshakeResponse41.decode(
                        packet.payload, serverCapabilities: ClientSession.advertisedCapabilities),
                    backend.authenticate(
                        login.username, response: login.authResponse, scramble: scramble, changeUser: false)
                else {
                    context.close(promise: nil)
                    return
                }
                self.capabilities = login.capabilities
                write(ok(sequenceID: 2, info: ""), context: context)
                continue
            }
            switch packet.payload.getInteger(at: packet.payload.readerIndex, as: UInt8.self) {
            case Command.changeUser.rawValue:
                guard let request = try? Packets.ChangeUser.decode(packet.payload, capabilities: capabilities) else {
                    context.close(promise: nil)
                    return
                }
                if backend.authenticate(
                    request.username, response: request.authResponse, scramble: scramble, changeUser: true)
                {
                    write(ok(sequenceID: 1, info: ""), context: context)
                } else {
                    var payload = ByteBuffer()
                    Packets.ErrorPacket(
                        errorCode: 1045, sqlState: "28000",
                        message: "Access denied for user '\(request.username)'@'127.0.0.1' (using password: YES)"
                    ).encode(into: &payload, capabilities: capabilities)
                    write(MySQLPacket(sequenceID: 1, payload: payload), context: context)
                }
            default:
                write(ok(sequenceID: 1, info: backend.currentUser()), context: context)
            }
        }
    }

    func ok(sequenceID: UInt8, info: String) -> MySQLPacket {
        var payload = ByteBuffer()
        Packets.OKPacket(info: info).encode(into: &payload, capabilities: capabilities ?? [.protocol41])
        return MySQLPacket(sequenceID: sequenceID, payload: payload)
    }

    func write(_ packet: MySQLPacket, context: ChannelHandlerContext) {
        var out = context.channel.allocator.buffer(capacity: packet.payload.readableBytes + 4)
        MySQLPacketEncoder.write(packet, into: &out)
        context.writeAndFlush(wrapOutboundOut(out), promise: nil)
    }
}
