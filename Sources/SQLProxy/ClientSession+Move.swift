import Logging
import MySQLWire
import NIOCore
import Topology

/// Moving a session to a new server connection between statements: when the primary moved, or when the
/// session's server connection was lost. Only a portable session moves (`SessionPortability`: nothing on
/// the old connection that a fresh login as the same user, database and character set would not
/// recreate, and an account the proxy can log in again for); the client's next command then runs on the
/// new connection and the client cannot tell. Any other session ends with a clear error at its next
/// command, never with a silent change of session state. While no primary is known or it cannot be
/// reached, the move waits up to `proxy.failover_hold`.
extension ClientSession {
    /// Before the client's next command: whether it can go to the session's backend now. When the primary
    /// moved or the backend connection was lost, a portable session starts moving (the command waits in
    /// `inbound`) and any other ends; both return false.
    func backendReadyForNextCommand() -> Bool {
        guard case .command = phase, relay.pending.isEmpty, changeUser == nil, !relay.sendingLocalFile else {
            return backend != nil
        }
        if inbound.getInteger(at: inbound.readerIndex + 4, as: UInt8.self) == Command.quit.rawValue {
            // A COM_QUIT needs no new connection: it ends the session as it is.
            if backend == nil { close() }
            return backend != nil
        }
        let reason: String
        if let backend {
            guard let primary = environment.state.primary, primary != backend.server else { return true }
            reason = "the primary moved from \(backend.server.name) to \(primary.name)"
        } else {
            reason = "its server connection was lost"
        }
        if let obstacle = moveObstacle {
            endUnmovable(reason, obstacle: obstacle)
        } else {
            startMove(reason)
        }
        return false
    }

    /// Why the session cannot move to a new server connection, or nil when it can.
    var moveObstacle: String? {
        if let obstacle = relay.portability.obstacle ?? relay.statements.obstacle { return obstacle }
        if relay.portability.inserted, relay.statements.anyReadsLastInsertID {
            return "a prepared statement reads LAST_INSERT_ID(), which an INSERT set"
        }
        if !canLogInAgain { return "the account logs in with client_ed25519, which only the client can answer" }
        if environment.state.session(connectionID)?.killRequested == true { return "it was named by a KILL" }
        return nil
    }

    /// The session's backend connection closed while no command was running: a portable session keeps its
    /// client and moves at the next command; any other session ends now. Returns whether it stays.
    func backendLostBetweenStatements() -> Bool {
        guard case .command = phase, relay.pending.isEmpty, changeUser == nil, !relay.sendingLocalFile,
            moveObstacle == nil
        else { return false }
        if relay.portability.endedTransactionLast {
            // COMMIT/ROLLBACK RELEASE (or completion_type 2): the server ended the session on purpose, and a
            // client of the server would find its connection closed.
            logger.notice("the server closed the connection after COMMIT or ROLLBACK (RELEASE); the session ends")
            return false
        }
        logger.notice(
            "server connection lost between statements; the session moves at its next command",
            metadata: ["server": "\(backend?.server.name ?? "?")"])
        backend = nil
        forgetBackendThread()
        return true
    }

    /// Other sessions' KILL no longer maps to a thread of this session until it has a new connection.
    func forgetBackendThread() {
        environment.state.update(connectionID) {
            $0.backend = nil
            $0.backendThreadID = nil
        }
    }

    func startMove(_ reason: String) {
        guard let login else { return }
        if let backend {
            self.backend = nil
            backend.handler.detachFromSession(channel: backend.channel, quit: true)
        }
        forgetBackendThread()
        heldBackend = nil
        relay.scanner = PacketStreamScanner()
        relay.atResponseStart = true
        phase = .movingBackend(reason: reason)
        logger.notice("moving the session to a new server connection", metadata: ["reason": "\(reason)"])
        armBackendLoginTimeout()
        backendDeadline = nil
        startBackendLogin(
            BackendLoginRequest(
                username: login.username, database: relay.portability.database ?? login.database,
                capabilities: login.capabilities, collation: login.collation, attributes: login.attributes,
                passwordSHA1: login.passwordSHA1, failureSequenceID: 1))
    }

    /// The new connection is logged in: the waiting command goes there, once its TLS hop is on the fast path.
    func backendMoved(_ session: ClientHandshakeStateMachine.Session) {
        guard case .movingBackend(let reason) = phase, let context, let login, let backend else { return }
        self.backend?.session = session
        let expected = login.capabilities.subtracting(Self.perHop)
        guard session.capabilities.isSuperset(of: expected) else {
            moveFailed("the new server lacks capabilities the client negotiated")
            return
        }
        handshakeTimeout?.cancel()
        handshakeTimeout = nil
        environment.state.update(connectionID) {
            $0.backend = backend.server
            $0.backendThreadID = session.connectionID
        }
        logger.notice(
            "session logged in on a new server connection",
            metadata: [
                "reason": "\(reason)", "server": "\(backend.server.name)", "backend_thread": "\(session.connectionID)",
                "settings_to_replay": "\(relay.portability.settings.count)",
                "statements_to_prepare": "\(relay.statements.statements.count)",
            ])
        if environment.tlsSecrets != nil, environment.backendTLS != nil {
            startTLSFastPath(backend.channel, hop: "backend")
        }
        // After the fast-path switch (queued first on the same event loop), so it happens while the hop is quiet.
        context.eventLoop.assumeIsolated().execute { [weak self] in
            guard let self else { return }
            self.replay = StateReplay(statementOrder: self.relay.statements.replayOrder)
            self.replayNext()
        }
    }

    /// The session's `SET` statements, then its prepared statements, run again on the new connection before
    /// the waiting command.
    struct StateReplay {
        /// Client ids of the prepared statements, in the order they are prepared again.
        var statementOrder: [UInt32]
        /// Steps done: `SET` statements first, then prepares.
        var next = 0
        var tracker: ResponseTracker?
        var inbound = ByteBuffer()
        var decoder = MySQLPacketDecoder(maxPayloadSize: 1 << 20)
    }

    /// Sends the next `SET` statement or prepare to replay, or resumes the relay when all have run.
    func replayNext() {
        guard case .movingBackend = phase, let backend, let context, var replay else { return }
        let capabilities = backend.session?.capabilities ?? []
        let payload: ByteBuffer
        if replay.next < relay.portability.settings.count {
            replay.tracker = ResponseTracker(command: .query, capabilities: capabilities)
            payload = relay.portability.settings[replay.next]
        } else if replay.next - relay.portability.settings.count < replay.statementOrder.count,
            let statement = relay.statements.statements[
                replay.statementOrder[replay.next - relay.portability.settings.count]]
        {
            replay.tracker = ResponseTracker(command: .statementPrepare, capabilities: capabilities)
            payload = statement.prepare
        } else {
            self.replay = nil
            relay.portability.moved()
            environment.metrics.sessionMove(moved: true)
            logger.debug("session moved", metadata: ["server": "\(backend.server.name)"])
            phase = .command
            readInbound(context: context)
            return
        }
        self.replay = replay
        send(MySQLPacket(sequenceID: 0, payload: payload), to: backend)
        backend.channel.flush()
    }

    /// The server's answers to replayed statements: each `SET` must get an OK, each prepare its statement
    /// with the same parameters and columns as before.
    func replayRead(_ buffer: ByteBuffer) {
        guard var replay else { return }
        self.replay = nil  // not held twice while mutated
        replay.inbound.writeImmutableBuffer(buffer)
        do {
            while var tracker = replay.tracker, let packet = try replay.decoder.decode(buffer: &replay.inbound) {
                let outcome = tracker.serverPacket(packet.payload)
                replay.tracker = tracker
                switch outcome {
                case .inProgress:
                    continue
                case .localInfileRequested, .protocolViolation:
                    throw ProxyProtocolError("unexpected answer to a replayed statement")
                case .finished(let status):
                    if let problem = replayAnswered(tracker, status: status, packet: packet, replay: replay) {
                        moveFailed(problem)
                        return
                    }
                }
                replay.tracker = nil
                replay.next += 1
                self.replay = replay
                replayNext()
                return
            }
            self.replay = replay
        } catch {
            moveFailed("the new connection answered a replayed statement wrongly: \(error)")
        }
    }

    /// Checks one replayed statement's answer (`packet`, its last); returns why the move cannot go on, or nil.
    private func replayAnswered(
        _ tracker: ResponseTracker, status: StatusFlags?, packet: MySQLPacket, replay: StateReplay
    ) -> String? {
        let error = { () -> String in
            let error = try? Packets.ErrorPacket.decode(packet.payload, capabilities: [.protocol41])
            return error.map { "\($0.errorCode): \($0.message)" } ?? "no OK"
        }
        guard tracker.command == .statementPrepare else {
            return status == nil ? "a SET statement of the session failed on the new connection (\(error()))" : nil
        }
        guard let ok = tracker.prepared else {
            return "a prepared statement of the session failed on the new connection (\(error()))"
        }
        return relay.statements.preparedAgain(replay.statementOrder[replay.next - relay.portability.settings.count], ok)
    }

    /// The move did not work out: the waiting command gets an ERR and the session ends.
    func moveFailed(_ reason: String) {
        environment.metrics.sessionMove(moved: false)
        logger.error("cannot move the session to a new server connection: \(reason)")
        refuse(errno: 1927, sqlState: "70100", "Connection was killed: \(reason); reconnect", sequenceID: 1)
    }

    /// The session's backend changed under it but its state cannot follow: the waiting command gets an ERR
    /// and the session ends.
    func endUnmovable(_ reason: String, obstacle: String) {
        environment.metrics.sessionMove(moved: false)
        logger.notice("ending the session", metadata: ["reason": "\(reason)", "cannot_move_because": "\(obstacle)"])
        refuse(
            errno: 1927, sqlState: "70100",
            "Connection was killed: \(reason), and the session cannot move (\(obstacle)); reconnect",
            sequenceID: 1)
    }
}
