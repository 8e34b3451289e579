import Logging
import MySQLWire
import NIOCore
import NIOPosix
import NIOSSL
import Topology

/// `COM_CHANGE_USER` for `ClientSession`: verified by the proxy, replayed on the session's backend.
extension ClientSession {

    var isAwaitingClientAnswer: Bool {
        if case .awaitingClientAnswer = changeUser { return true }
        return false
    }

    /// The proxy verifies the new user itself (as at login), then has the backend change user with the
    /// recovered SHA1(password); the backend's OK or ERR goes back to the client.
    func startChangeUser(_ packet: MySQLPacket, backend: Backend) {
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

    func verifyChangeUser(
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
    func backendChangeUserRead() {
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
}
