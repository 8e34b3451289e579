import Logging
import MySQLWire
import NIOCore
import NIOPosix
import NIOSSL
import Topology

/// `COM_CHANGE_USER` for `ClientSession`: verified by the proxy, replayed on the session's backend.
///
/// A `mysql_native_password` account is verified from the client's answer to the greeting scramble (or to
/// a fresh one, after an AuthSwitchRequest when the client started with another plugin); the backend then
/// changes user with the recovered SHA1(password). An `ed25519` account is verified as at login: the proxy
/// cannot sign for the user, so the backend's own challenge goes to the client, and the client's signature
/// is checked against the stored public key before it is handed to the backend.
///
/// A refusal ends nothing, as with MariaDB (measured on 10.11): the connection keeps its old user and
/// database, its session is reset (user variables, temporary tables, session variables and an open
/// transaction are gone), the ERR comes after a one-second pause, and from the fourth failure on one
/// connection every change of user gets 1047 "Unknown command". The backend does all of that itself: when the
/// proxy refuses, it sends the backend a change of user that the backend cannot accept, and then passes the
/// backend's ERR on to the client.
extension ClientSession {

    /// What the proxy decided from the account store about a change of user.
    enum ChangeUserVerdict: Sendable {
        /// Access denied (1045).
        case refused
        /// Verified; the backend is answered with this SHA1(password) (nil: no password).
        case verified(passwordSHA1: [UInt8]?)
        /// An ed25519 account: the backend's challenge must be signed by the client.
        case ed25519
        /// The client answered with another plugin: it must answer `mysql_native_password` first.
        case switchToNative
    }

    /// The client's next packet answers an AuthSwitchRequest of the change of user.
    var isAwaitingClientAnswer: Bool {
        switch changeUser {
        case .awaitingClientAnswer?, .awaitingClientSignature?: true
        case .verifying?, .awaitingBackendChallenge?, .awaitingBackend?, .awaitingBackendRefusal?, nil: false
        }
    }

    /// The backend's packets belong to the change of user, not to the relay.
    var isAwaitingBackendChangeUser: Bool {
        switch changeUser {
        case .awaitingBackendChallenge?, .awaitingBackend?, .awaitingBackendRefusal?: true
        case .awaitingClientAnswer?, .awaitingClientSignature?, .verifying?, nil: false
        }
    }

    /// The proxy verifies the new user itself (as at login), then has the backend change user; the
    /// backend's OK or ERR goes back to the client.
    func startChangeUser(_ packet: MySQLPacket, backend: Backend) {
        guard let login, relay.pending.isEmpty else {
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
        if isThrottled(request.username) {
            refuseChangeUser(request, throttledError, clientSequence: 1, backend: backend)
            return
        }
        let plugin = request.authPluginName.flatMap { $0.isEmpty ? nil : $0 } ?? MySQLNativePassword().name
        verifyChangeUser(
            request, response: request.authResponse, plugin: plugin, scramble: scramble, clientSequence: 1,
            backend: backend)
    }

    /// The client's answer to an AuthSwitchRequest of the change of user (sequence id 2).
    func changeUserAnswerReceived(_ packet: MySQLPacket, backend: Backend) {
        guard packet.sequenceID == 2 || compression != nil else {
            refuse(errno: 1156, sqlState: "08S01", "Got packets out of order", sequenceID: packet.sequenceID &+ 1)
            return
        }
        let answer = Array(packet.payload.readableBytesView)
        switch changeUser {
        case .awaitingClientAnswer(let request, let scramble)?:
            verifyChangeUser(
                request, response: answer, plugin: MySQLNativePassword().name, scramble: scramble, clientSequence: 3,
                backend: backend)
        case .awaitingClientSignature(let request, let challenge, let backendSequence)?:
            verifyChangeUserSignature(
                request, signature: answer, challenge: challenge, backendSequence: backendSequence)
        case .verifying?, .awaitingBackendChallenge?, .awaitingBackend?, .awaitingBackendRefusal?, nil:
            break
        }
    }

    func verifyChangeUser(
        _ request: Packets.ChangeUser, response: [UInt8], plugin: String, scramble: [UInt8], clientSequence: UInt8,
        backend: Backend
    ) {
        let native = MySQLNativePassword().name
        let lookup = lookUpChangeUserAccount(
            request.username, denied: ChangeUserVerdict.refused,
            retriesAfterRefresh: { if case .refused = $0 { true } else { false } }
        ) { credential -> ChangeUserVerdict in
            guard let credential else { return plugin == native ? .refused : .switchToNative }
            switch credential {
            case .ed25519:
                return .ed25519
            case _ where plugin != native:
                return .switchToNative
            case .empty:
                return response.isEmpty ? .verified(passwordSHA1: nil) : .refused
            case .nativePassword(let doubleSHA1):
                return MySQLNativePassword.recoverPasswordSHA1(
                    response: response, scramble: scramble, doubleSHA1: doubleSHA1
                )
                .map { .verified(passwordSHA1: $0) } ?? .refused
            }
        }
        lookup?.assumeIsolated().whenSuccess { [weak self] verdict in
            guard let self, case .verifying = self.changeUser, let backend = self.backend else { return }
            switch verdict {
            case .refused:
                self.refuseChangeUser(
                    request, self.accessDenied(request, usingPassword: !response.isEmpty),
                    clientSequence: clientSequence, backend: backend)
            case .switchToNative:
                // Answer with our plugin and a fresh scramble; the client's next packet is its answer.
                let fresh = Self.makeScramble()
                self.changeUser = .awaitingClientAnswer(request, scramble: fresh)
                var payload = ByteBuffer()
                Packets.AuthSwitchRequest(pluginName: native, pluginData: fresh).encode(into: &payload)
                self.write(MySQLPacket(sequenceID: clientSequence, payload: payload), flush: true)
            case .verified(let passwordSHA1):
                let answer =
                    passwordSHA1.map {
                        MySQLNativePassword.response(passwordSHA1: $0, scramble: backend.session?.scramble ?? [])
                    } ?? []
                self.changeUser = .awaitingBackend(request, passwordSHA1: passwordSHA1, clientSequence: clientSequence)
                self.forwardChangeUser(request, authResponse: answer, to: backend)
            case .ed25519:
                // The client already answered one AuthSwitchRequest (the account changed meanwhile): it
                // cannot take a second one.
                guard clientSequence == 1 else {
                    self.refuseChangeUser(
                        request, self.accessDenied(request, usingPassword: !response.isEmpty),
                        clientSequence: clientSequence, backend: backend)
                    return
                }
                // An empty mysql_native_password answer: the server switches to client_ed25519 and sends its
                // challenge, which the client must sign.
                self.changeUser = .awaitingBackendChallenge(request)
                self.forwardChangeUser(request, authResponse: [], to: backend)
            }
        }
    }

    /// Checks the client's ed25519 signature of the backend's challenge against the stored public key (as
    /// at login, looking again after a refresh when it does not match), then hands it to the backend.
    func verifyChangeUserSignature(
        _ request: Packets.ChangeUser, signature: [UInt8], challenge: [UInt8], backendSequence: UInt8
    ) {
        let lookup = lookUpChangeUserAccount(request.username, denied: false, retriesAfterRefresh: { !$0 }) {
            credential in
            guard let credential else { return false }
            return MariaDBEd25519().verify(response: signature, scramble: challenge, credential: credential)
        }
        lookup?.assumeIsolated().whenSuccess { [weak self] verified in
            guard let self, case .verifying = self.changeUser, let backend = self.backend else { return }
            guard verified else {
                // The backend waits for the signature: it gets one that cannot verify, and refuses.
                self.changeUser = .awaitingBackendRefusal(
                    request, refusal: self.accessDenied(request, usingPassword: !signature.isEmpty), clientSequence: 3)
                self.send(
                    MySQLPacket(sequenceID: backendSequence, payload: ByteBuffer(bytes: Self.invalidEd25519Signature)),
                    to: backend)
                backend.channel.flush()
                return
            }
            self.changeUser = .awaitingBackend(request, passwordSHA1: nil, clientSequence: 3)
            self.send(MySQLPacket(sequenceID: backendSequence, payload: ByteBuffer(bytes: signature)), to: backend)
            backend.channel.flush()
        }
    }

    /// Looks up the account a change of user asks for, with the rules of a login: the user's allowed
    /// networks (else `denied`) and REQUIRE SSL; `verify` gets the account's credential (nil when there is
    /// none the proxy can use), and a verdict `retriesAfterRefresh` marks is checked once more after
    /// re-reading the accounts, so an account changed a moment ago is seen. Sets `.verifying`.
    func lookUpChangeUserAccount<Verdict: Sendable>(
        _ username: String, denied: Verdict, retriesAfterRefresh: @escaping @Sendable (Verdict) -> Bool,
        verify: @escaping @Sendable (StoredCredential?) -> Verdict
    ) -> EventLoopFuture<Verdict>? {
        guard let context else { return nil }
        changeUser = .verifying
        let accounts = environment.accounts
        let address = clientAddress
        let tls = isTLS(context)
        let certificates = self.certificates
        let networks = environment.settings.userNetworks[username]
        @Sendable func check(_ account: Account?) -> Verdict {
            guard let account, Self.loginRefusal(account, tls: tls, certificates: certificates) == nil else {
                return verify(nil)
            }
            return verify(Self.credential(account))
        }
        return context.eventLoop.makeFutureWithTask {
            if let networks, !networks.contains(where: { $0.contains(address) }) { return denied }
            let verdict = check(await accounts.match(user: username, clientAddress: address))
            guard retriesAfterRefresh(verdict) else { return verdict }
            await accounts.refresh()
            return check(await accounts.match(user: username, clientAddress: address))
        }
    }

    /// The proxy refuses the change of user. The backend is sent the same change of user with an answer it
    /// cannot accept, so that it resets the session, keeps the old user, pauses and counts the failure just
    /// as MariaDB does for a client; `refusal` is what the client is told when the backend answers 1045.
    func refuseChangeUser(
        _ request: Packets.ChangeUser, _ refusal: Packets.ErrorPacket, clientSequence: UInt8, backend: Backend
    ) {
        changeUser = .awaitingBackendRefusal(request, refusal: refusal, clientSequence: clientSequence)
        forwardChangeUser(request, authResponse: Self.makeScramble(), to: backend)
    }

    /// Access denied, worded as the server words it.
    func accessDenied(_ request: Packets.ChangeUser, usingPassword: Bool) -> Packets.ErrorPacket {
        Packets.ErrorPacket(
            errorCode: 1045, sqlState: "28000",
            message:
                "Access denied for user '\(request.username)'@'\(clientAddress)' (using password: \(usingPassword ? "YES" : "NO"))"
        )
    }

    /// A client_ed25519 answer the server always rejects as a wrong password: 64 bytes (a signature's length,
    /// so not a handshake error) whose S half has its top bits set, which no signature check accepts.
    static let invalidEd25519Signature: [UInt8] = Array(repeating: 0, count: 63) + [0xFF]

    /// The change of user as the backend gets it: the client's request with the proxy's answer.
    func forwardChangeUser(_ request: Packets.ChangeUser, authResponse: [UInt8], to backend: Backend) {
        var forwarded = request
        forwarded.authPluginName = MySQLNativePassword().name
        forwarded.authResponse = authResponse
        forwarded.attributes["_proxy"] = "switchyard"
        forwarded.attributes["_proxy_client_address"] = clientAddress
        var payload = ByteBuffer()
        forwarded.encode(into: &payload, capabilities: backend.session?.capabilities ?? [])
        send(MySQLPacket(sequenceID: 0, payload: payload), to: backend)
        backend.channel.flush()
    }

    /// The backend's side of a change of user: its ed25519 challenge (passed on to the client), then OK,
    /// ERR, or a `mysql_native_password` auth switch the proxy answers itself.
    func backendChangeUserRead() {
        guard let backend else { return }
        do {
            while let step = changeUser, let packet = try changeUserDecoder.decode(buffer: &changeUserInbound) {
                let header = packet.payload.getInteger(at: packet.payload.readerIndex, as: UInt8.self)
                switch step {
                case .awaitingBackendChallenge(let request):
                    switch header {
                    case 0xFE:
                        guard let switchRequest = Packets.AuthSwitchRequest.decode(packet.payload),
                            switchRequest.pluginName == MariaDBEd25519().name
                        else {
                            throw ProxyProtocolError("the server did not ask for client_ed25519 during change user")
                        }
                        changeUser = .awaitingClientSignature(
                            request, challenge: switchRequest.pluginData, backendSequence: packet.sequenceID &+ 1)
                        var payload = ByteBuffer()
                        Packets.AuthSwitchRequest(
                            pluginName: switchRequest.pluginName, pluginData: switchRequest.pluginData
                        )
                        .encode(into: &payload)
                        write(MySQLPacket(sequenceID: 1, payload: payload), flush: true)
                    case 0xFF:
                        backendRefusedChangeUser(request, packet, clientSequence: 1)
                        return
                    default:
                        // The proxy has verified nothing yet: never pass an OK on.
                        throw ProxyProtocolError("the server accepted an unsigned ed25519 change of user")
                    }
                case .awaitingBackend(let request, let passwordSHA1, let clientSequence):
                    switch header {
                    case 0x00:
                        changeUser = nil
                        login?.username = request.username
                        login?.database = request.database.isEmpty ? nil : request.database
                        login?.passwordSHA1 = passwordSHA1
                        if let collation = request.collation { login?.collation = UInt8(truncatingIfNeeded: collation) }
                        relay.portability.changedUser()
                        relay.statements.reset()
                        // A move logs in again with the handshake's one-byte collation and SHA1(password).
                        canLogInAgain = passwordSHA1 != nil && (request.collation ?? 0) <= 0xFF
                        environment.state.update(connectionID) { $0.user = request.username }
                        clearFailedLogins(request.username)
                        logger[metadataKey: "user"] = "\(request.username)"
                        write(MySQLPacket(sequenceID: clientSequence, payload: packet.payload), flush: true)
                        resumeAfterChangeUser()
                        return
                    case 0xFE:
                        guard let switchRequest = Packets.AuthSwitchRequest.decode(packet.payload),
                            switchRequest.pluginName == MySQLNativePassword().name
                        else {
                            throw ProxyProtocolError("the server asked for an unsupported plugin during change user")
                        }
                        let answer =
                            passwordSHA1.map {
                                MySQLNativePassword.response(passwordSHA1: $0, scramble: switchRequest.pluginData)
                            } ?? []
                        send(
                            MySQLPacket(sequenceID: packet.sequenceID &+ 1, payload: ByteBuffer(bytes: answer)),
                            to: backend)
                        backend.channel.flush()
                    default:
                        backendRefusedChangeUser(request, packet, clientSequence: clientSequence)
                        return
                    }
                case .awaitingBackendRefusal(let request, let refusal, let clientSequence):
                    switch header {
                    case 0xFF:
                        let serverError = try? Packets.ErrorPacket.decode(packet.payload, capabilities: [.protocol41])
                        guard let serverError, serverError.errorCode == 1045 else {
                            backendRefusedChangeUser(request, packet, clientSequence: clientSequence)
                            return
                        }
                        var payload = ByteBuffer()
                        refusal.encode(into: &payload, capabilities: [.protocol41])
                        changeUserRefused(
                            request, MySQLPacket(sequenceID: clientSequence, payload: payload),
                            errno: refusal.errorCode)
                        return
                    case 0xFE where packet.sequenceID == 1:
                        // The account uses another plugin: its request (the server's first answer, only) gets
                        // an answer as wrong as the first one. A lone 0xFE is the old protocol's request for a
                        // `mysql_old_password` answer (8 bytes and a NUL), for accounts with a pre-4.1 hash.
                        let answer: [UInt8]
                        if packet.payload.readableBytes == 1 {
                            answer = Array(Self.makeScramble().prefix(8)) + [0]
                        } else if let switchRequest = Packets.AuthSwitchRequest.decode(packet.payload) {
                            answer =
                                switchRequest.pluginName == MariaDBEd25519().name
                                ? Self.invalidEd25519Signature : Self.makeScramble()
                        } else {
                            throw ProxyProtocolError("malformed auth switch during a refused change of user")
                        }
                        send(MySQLPacket(sequenceID: 2, payload: ByteBuffer(bytes: answer)), to: backend)
                        backend.channel.flush()
                    default:
                        // Never keep a backend that accepted what the proxy refused.
                        logger.error("the server did not refuse a change of user the proxy refused")
                        var payload = ByteBuffer()
                        refusal.encode(into: &payload, capabilities: [.protocol41])
                        write(MySQLPacket(sequenceID: clientSequence, payload: payload), flush: true)
                        close()
                        return
                    }
                case .awaitingClientAnswer, .awaitingClientSignature, .verifying:
                    throw ProxyProtocolError("the server sent a packet nobody asked for during change user")
                }
            }
        } catch {
            logger.error("backend protocol error during change user: \(error)")
            close()
        }
    }

    /// The server's ERR goes to the client as is; the server kept the old user, and so does the session.
    func backendRefusedChangeUser(_ request: Packets.ChangeUser, _ packet: MySQLPacket, clientSequence: UInt8) {
        let errno = packet.payload.getInteger(
            at: packet.payload.readerIndex + 1, endianness: .little, as: UInt16.self)
        changeUserRefused(
            request, MySQLPacket(sequenceID: clientSequence, payload: packet.payload), errno: errno ?? 0)
    }

    /// The refusal goes to the client, counted as a failed login when it is 1045 (as at login); the session
    /// carries on as the old user.
    func changeUserRefused(_ request: Packets.ChangeUser, _ error: MySQLPacket, errno: UInt16) {
        changeUser = nil
        environment.metrics.error(errno)
        if errno == 1045 {
            environment.metrics.failedLogin()
            recordFailedLogin(request.username)
        }
        logger.notice("change user refused", metadata: ["new_user": "\(request.username)", "errno": "\(errno)"])
        // The server reset the session to its global defaults (character set included), which a fresh login
        // with the session's own character set would not reproduce.
        relay.portability.pin("a refused change of user (the server reset the session to its global defaults)")
        write(error, flush: true)
        resumeAfterChangeUser()
    }

    /// The relay goes on: backend bytes that came after the change of user's last packet, then client
    /// commands sent meanwhile.
    func resumeAfterChangeUser() {
        let rest = changeUserInbound
        changeUserInbound = ByteBuffer()
        if rest.readableBytes > 0 { backendRead(rest) }
        if inbound.readableBytes > 0, let context { readInbound(context: context) }
    }
}
