import Logging
import MySQLWire
import NIOCore

/// The server's answers on their way to the client: the bytes pass unchanged (but for the statement id of a
/// prepare answered after a move), while `ResponseTracker`s follow where each answer ends.
extension ClientSession {
    func backendRead(_ buffer: ByteBuffer) {
        guard let context else { return }
        if fast.relayed != nil {
            keepLateBytes(buffer, fromBackend: true)
            return
        }
        var buffer = buffer
        if case .movingBackend = phase {
            replayRead(buffer)
            return
        }
        if isAwaitingBackendChangeUser {
            changeUserInbound.writeBuffer(&buffer)
            backendChangeUserRead()
            return
        }
        if var held = heldBackend.take() {
            held.writeBuffer(&buffer)
            buffer = held
        }
        let scan = relay.scanAnswers(buffer, metrics: environment.metrics, handOverUnusual: false)
        for (index, clientID) in scan.statementIDs {
            buffer.setInteger(clientID, at: index, endianness: .little)
        }
        if case .broken(let start, let errorSequenceID, let reason)? = scan.stop {
            logger.error("backend protocol error: \(reason)")
            if let held = heldAnswer.take() { emit(held.bytes, context: context) }
            // The client gets what came before the bad packet, then an ERR in its place.
            if let whole = buffer.getSlice(at: buffer.readerIndex, length: start - buffer.readerIndex) {
                emit(whole, context: context)
            }
            if let errorSequenceID {
                reply(
                    errno: 1158, sqlState: "08S01",
                    "Got an error reading communication packets: the server's answer was malformed (\(reason)); "
                        + "the session ends", sequenceID: errorSequenceID)
            }
            close()
            return
        }
        if scan.forwardable > 0, var slice = buffer.readSlice(length: scan.forwardable) {
            if heldAnswer != nil {
                heldAnswer!.bytes.writeBuffer(&slice)
                if !heldAnswer!.releasing,
                    relay.isIdle || heldAnswer!.bytes.readableBytes > HeldAnswer.maximumBytes
                {
                    release(heldAnswer!)
                }
            }
            if slice.readableBytes > 0 { emit(slice, context: context) }
        }
        if buffer.readableBytes > 0 { heldBackend = buffer }
        if relay.isIdle, heldAnswer == nil { offerToFastRelaySoon() }
    }

    /// A whole held answer goes to the client: SHOW PROCESSLIST's with proxy ids; a KILL's OK once the
    /// client connections it ended are shut down (answers that come meanwhile wait behind it).
    func release(_ held: HeldAnswer) {
        guard let context else { return }
        switch held.kind {
        case .processList:
            heldAnswer = nil
            emit(showingProxyIDs(held.bytes), context: context)
        case .sessionStatus:
            heldAnswer = nil
            let deprecateEOF = backend?.session?.capabilities.contains(.deprecateEOF) ?? false
            emit(
                SessionStatus.rewrite(held.bytes, deprecateEOF: deprecateEOF, clientHopCompressed: compression != nil)
                    ?? held.bytes, context: context)
        case .kill(let targets):
            let shutDowns =
                held.lastPacketHeader == 0x00 ? targets.compactMap { environment.state.session($0)?.shutDown() } : []
            guard !shutDowns.isEmpty else {
                heldAnswer = nil
                emit(held.bytes, context: context)
                return
            }
            heldAnswer!.releasing = true
            let loop = context.eventLoop
            let bound = NIOLoopBound(self, eventLoop: loop)
            EventLoopFuture.andAllComplete(shutDowns, on: loop).whenComplete { _ in
                let session = bound.value
                guard let held = session.heldAnswer.take(), let context = session.context else { return }
                session.emit(held.bytes, context: context)
                context.flush()  // (outside a read, nothing else flushes it)
                if session.relay.isIdle { session.offerToFastRelaySoon() }
            }
        }
    }

    /// A whole thread list (`SHOW PROCESSLIST`, `information_schema.PROCESSLIST`) with this proxy's sessions
    /// under their proxy ids.
    func showingProxyIDs(_ answer: ByteBuffer) -> ByteBuffer {
        guard relay.isIdle, let backend, let session = backend.session else { return answer }
        let ids = environment.state.sessionIDsByBackendThread(on: backend.server)
        return ProcessListIDs.rewrite(answer, deprecateEOF: session.capabilities.contains(.deprecateEOF)) {
            ids[$0]
        } ?? answer
    }
}

/// An answer a session holds whole before it goes to the client.
struct HeldAnswer {
    enum Kind {
        /// A thread list's (`ProcessListIDs`), whose ids become the proxy's.
        case processList
        /// A `SHOW STATUS`'s to a compressed client hop (`SessionStatus`), whose `Compression` row becomes ON.
        case sessionStatus
        /// A KILL's that ends these proxy sessions' connections: a server shuts the killed connection
        /// down before it answers, so a client that goes on to use it finds it closed (and reconnects).
        case kill([UInt32])
    }

    /// Answers larger than this go on as they are (a `FULL` process list of huge statements is not held whole).
    static let maximumBytes = 16 * 1024 * 1024

    var kind: Kind
    var bytes = ByteBuffer()
    /// Waiting for the killed sessions' connections to be shut down; what comes meanwhile is added.
    var releasing = false

    /// The first payload byte of the last whole packet held (0x00 for an OK, 0xFF for an ERR).
    var lastPacketHeader: UInt8? {
        guard let last = TextResultSet.packets(bytes)?.last else { return nil }
        return last.payload.getInteger(at: last.payload.readerIndex, as: UInt8.self)
    }
}
