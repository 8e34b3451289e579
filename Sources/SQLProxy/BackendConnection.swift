import Logging
import MySQLWire
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import TLSRecordLayer
import Topology

/// The proxy's connection to one database server on behalf of one client session: logs in as the
/// session's user (driven by `ClientHandshakeStateMachine`), then hands every byte the server sends to
/// the session unchanged. Lives on the session's event loop, so the two call each other directly.
final class BackendHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// What the session hears from its backend.
    struct Callbacks {
        var authenticated: (ClientHandshakeStateMachine.Session) -> Void
        var loginFailed: (BackendLoginError) -> Void
        /// The server wants an answer only the client can give (`client_ed25519`); see `answerPlugin`.
        var pluginChallenge: (_ plugin: String, _ challenge: [UInt8]) -> Void
        var read: (ByteBuffer) -> Void
        var readComplete: () -> Void
        var writabilityChanged: (Bool) -> Void
        var closed: () -> Void
    }

    private enum Phase {
        case login(ClientHandshakeStateMachine)
        case relay
        case finished
    }

    private var phase: Phase
    private var callbacks: Callbacks?
    private let server: ServerIdentity
    private let tls: NIOSSLContext?
    /// Set when the session may switch this hop to the TLS fast path after login.
    private let tlsSecrets: TLSSecretLog?
    private var inbound = ByteBuffer()
    private var decoder = MySQLPacketDecoder(maxPayloadSize: 1 << 20)

    init(
        machine: ClientHandshakeStateMachine, server: ServerIdentity, tls: NIOSSLContext?,
        tlsSecrets: TLSSecretLog? = nil,
        callbacks: Callbacks
    ) {
        self.phase = .login(machine)
        self.server = server
        self.tls = tls
        self.tlsSecrets = tlsSecrets
        self.callbacks = callbacks
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        switch phase {
        case .relay:
            callbacks?.read(buffer)
        case .login(var machine):
            inbound.writeBuffer(&buffer)
            do {
                while case .login = phase, let packet = try decoder.decode(buffer: &inbound) {
                    let action = machine.packetReceived(packet)
                    phase = .login(machine)
                    handle(action, context: context, machine: &machine)
                }
            } catch {
                fail(.protocolViolation("\(error)"), context: context)
            }
        case .finished:
            // Records the TLS handler held while the fast relay carried the session, read out when the session
            // came back after the connection had closed: the server's last answer (the OK of a COMMIT RELEASE)
            // still goes to the session, which deals with the close after it.
            callbacks?.read(buffer)
        }
    }

    private func handle(
        _ action: ClientHandshakeStateMachine.Action, context: ChannelHandlerContext,
        machine: inout ClientHandshakeStateMachine
    ) {
        switch action {
        case .send(let packet):
            context.writeAndFlush(wrapOutboundOut(encode(packet)), promise: nil)
        case .sendAndStartTLS(let packet):
            context.writeAndFlush(wrapOutboundOut(encode(packet)), promise: nil)
            guard let tls else {
                fail(.protocolViolation("TLS requested without a TLS context"), context: context)
                return
            }
            do {
                // An IP address is verified against the certificate's IP SANs (no SNI is sent for it).
                let name =
                    server.host.contains(where: { $0.isLetter }) && !server.host.contains(":") ? server.host : nil
                let handler = try NIOSSLClientHandler(context: tls, serverHostname: name)
                try TLSFastPath.addTLSHandler(
                    handler, role: .client, secrets: tlsSecrets, to: context.pipeline.syncOperations)
            } catch {
                fail(.tls("\(error)"), context: context)
            }
        case .authenticated(let session):
            phase = .relay
            let leftover = inbound.readableBytes > 0 ? inbound : nil
            inbound = ByteBuffer()
            callbacks?.authenticated(session)
            if let leftover { callbacks?.read(leftover) }
        case .failed(let failure):
            fail(.login(failure), context: context)
        case .pluginChallenge(let plugin, let challenge):
            callbacks?.pluginChallenge(plugin, challenge)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event, case .login(var machine) = phase {
            let action = machine.tlsEstablished()
            phase = .login(machine)
            handle(action, context: context, machine: &machine)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if case .relay = phase { callbacks?.readComplete() }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        callbacks?.writabilityChanged(context.channel.isWritable)
    }

    func channelInactive(context: ChannelHandlerContext) {
        switch phase {
        case .login:
            fail(.closed, context: context)
        case .relay:
            phase = .finished
            callbacks?.closed()  // (kept for held records read out later; `detachFromSession` lets go)
        case .finished:
            break
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if case .login = phase {
            fail(
                Self.isTLSError(error) ? .tls(Self.describeTLS(error)) : .protocolViolation("\(error)"),
                context: context)
        } else {
            context.close(promise: nil)
        }
    }

    private static func isTLSError(_ error: any Error) -> Bool {
        error is NIOSSLError || error is NIOSSLExtraError || error is BoringSSLError
    }

    /// A short reason for clients and logs: what failed, not BoringSSL's whole error stack.
    private static func describeTLS(_ error: any Error) -> String {
        let text = "\(error)"
        if text.contains("CERTIFICATE_VERIFY_FAILED") {
            return "the server's certificate is not signed by the configured CA"
        }
        if let extra = error as? NIOSSLExtraError, extra == .failedToValidateHostname {
            return "the server's certificate does not match the configured host name or IP"
        }
        if text.contains("WRONG_VERSION_NUMBER") || text.contains("UNSUPPORTED_PROTOCOL") {
            return "no common TLS version (TLS 1.2 or newer is required)"
        }
        return String(text.prefix(160))
    }

    /// Sends the client's answer to a `pluginChallenge`.
    func answerPlugin(_ answer: [UInt8], channel: any Channel) {
        guard case .login(var machine) = phase else { return }
        let action = machine.pluginAnswered(answer)
        phase = .login(machine)
        if case .send(let packet) = action {
            channel.writeAndFlush(encode(packet), promise: nil)
        }
    }

    /// Stops delivering to the session (it is going away) and closes the backend connection. With `quit`
    /// (the connection is between commands), it says COM_QUIT first, as a client leaving does: a server
    /// counts a connection closed without it in `Aborted_clients` and logs an "Aborted connection" warning.
    func detachFromSession(channel: any Channel, quit: Bool) {
        let relaying = if case .relay = phase { true } else { false }
        phase = .finished
        callbacks = nil
        if quit, relaying, channel.isActive {
            channel.writeAndFlush(
                encode(MySQLPacket(sequenceID: 0, payload: ByteBuffer(bytes: [Command.quit.rawValue]))), promise: nil)
        }
        channel.close(promise: nil)
    }

    private func fail(_ error: BackendLoginError, context: ChannelHandlerContext) {
        guard case .login = phase else { return }
        phase = .finished
        let callbacks = self.callbacks
        self.callbacks = nil
        context.close(promise: nil)
        callbacks?.loginFailed(error)
    }

    private func encode(_ packet: MySQLPacket) -> ByteBuffer {
        var out = ByteBuffer()
        MySQLPacketEncoder.write(packet, into: &out)
        return out
    }
}

/// Why the proxy could not log in to a backend for a client.
enum BackendLoginError: Error, CustomStringConvertible {
    case connect(String)
    case tls(String)
    case login(ClientHandshakeStateMachine.Failure)
    case protocolViolation(String)
    case closed

    var description: String {
        switch self {
        case .connect(let reason): "cannot connect: \(reason)"
        case .tls(let reason): "TLS failed: \(reason)"
        case .login(.server(let error)): "the server refused the login: \(error.errorCode) \(error.message)"
        case .login(.tlsNotOffered): "the server does not offer TLS and backend_tls requires it"
        case .login(.unsupportedPlugin(let plugin)): "the server asked for the unsupported auth plugin \(plugin)"
        case .login(.protocolViolation(let reason)), .protocolViolation(let reason): "protocol error: \(reason)"
        case .closed: "the server closed the connection during login"
        }
    }
}
