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
            if let held = processListAnswer.take() { emit(held, context: context) }
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
            if processListAnswer != nil {
                processListAnswer!.writeBuffer(&slice)
                if relay.isIdle || processListAnswer!.readableBytes > ProcessListIDs.maximumAnswer {
                    slice = showingProxyIDs(processListAnswer.take()!)
                }
            }
            if slice.readableBytes > 0 { emit(slice, context: context) }
        }
        if buffer.readableBytes > 0 { heldBackend = buffer }
        if relay.isIdle { offerToFastRelaySoon() }
    }

    /// A whole `SHOW PROCESSLIST` answer with this proxy's sessions under their proxy ids.
    func showingProxyIDs(_ answer: ByteBuffer) -> ByteBuffer {
        guard relay.isIdle, let backend, let session = backend.session else { return answer }
        let ids = environment.state.sessionIDsByBackendThread(on: backend.server)
        return ProcessListIDs.rewrite(answer, deprecateEOF: session.capabilities.contains(.deprecateEOF)) {
            ids[$0]
        } ?? answer
    }
}
