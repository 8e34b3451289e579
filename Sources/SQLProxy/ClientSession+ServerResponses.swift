import Logging
import MySQLWire
import NIOCore

/// The server's answers on their way to the client: the bytes pass unchanged (but for the statement id of a
/// prepare answered after a move), while `ResponseTracker`s follow where each answer ends.
extension ClientSession {
    func backendRead(_ buffer: ByteBuffer) {
        guard let context else { return }
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
        let forwardable: Int
        let prefixLength = scanner.prefixLength
        // The oldest response's tracker is worked on as a local value (put back below), so the packets of a
        // long result set cost no access to the session's stored properties.
        var current = pending.popFirst()
        var startsResponse = atResponseStart
        /// Prepare responses whose statement id the client knows by another id (after a move).
        var statementIDs: [(index: Int, clientID: UInt32)] = []
        /// Where a packet the answers cannot contain starts (what came before it is sound), and the sequence
        /// id of an ERR to send in its place when the client is waiting for an answer (a server may end an
        /// answer with ERR at any packet, as it does when a statement fails while sending rows).
        var badAnswer: (start: Int, errorSequenceID: UInt8?)?
        do {
            forwardable = try scanner.scan(buffer) { packet in
                guard !packet.isContinuation else { return true }
                guard var tracker = current else {
                    badAnswer = (packet.payloadIndex - 4, nil)
                    throw ProxyProtocolError("the server sent a packet nobody asked for")
                }
                let header = packet.length > 0 ? buffer.getInteger(at: packet.payloadIndex, as: UInt8.self) : nil
                if let header, tracker.isPlainRow(header: header) { return true }
                let first = startsResponse
                if first, header == 0xFF, packet.length >= 3,
                    let errno = buffer.getInteger(at: packet.payloadIndex + 1, endianness: .little, as: UInt16.self)
                {
                    environment.metrics.error(errno)
                }
                startsResponse = false
                let prefix = buffer.getSlice(at: packet.payloadIndex, length: min(packet.length, prefixLength))!
                let outcome = tracker.serverPacket(prefix: prefix, length: packet.length)
                current = tracker
                if first, tracker.command == .statementPrepare,
                    let clientID = statements.prepareAnswered(tracker.prepared)
                {
                    statementIDs.append((packet.payloadIndex + 1, clientID))
                }
                switch outcome {
                case .inProgress:
                    break
                case .finished(let status):
                    current = pending.popFirst()
                    startsResponse = true
                    portability.responseFinished(status: status)
                    if tracker.command == .resetConnection, status != nil { statements.reset() }
                case .localInfileRequested:
                    sendingLocalFile = true
                    nextBackendSequenceID = packet.sequenceID &+ 1
                case .protocolViolation(let reason):
                    badAnswer = (packet.payloadIndex - 4, packet.sequenceID)
                    throw ProxyProtocolError(reason)
                }
                return true
            }
        } catch {
            if let current { pending.prepend(current) }
            logger.error("backend protocol error: \(error)")
            if let badAnswer {
                // The client gets what came before the bad packet, then an ERR in its place.
                for (index, clientID) in statementIDs where index < badAnswer.start {
                    buffer.setInteger(clientID, at: index, endianness: .little)
                }
                if let whole = buffer.getSlice(at: buffer.readerIndex, length: badAnswer.start - buffer.readerIndex) {
                    emit(whole, context: context)
                }
                if let sequenceID = badAnswer.errorSequenceID {
                    reply(
                        errno: 1158, sqlState: "08S01",
                        "Got an error reading communication packets: the server's answer was malformed (\(error)); "
                            + "the session ends", sequenceID: sequenceID)
                }
            }
            close()
            return
        }
        if let current { pending.prepend(current) }
        atResponseStart = startsResponse
        for (index, clientID) in statementIDs {
            buffer.setInteger(clientID, at: index, endianness: .little)
        }
        if forwardable > 0, let slice = buffer.readSlice(length: forwardable) {
            emit(slice, context: context)
        }
        if buffer.readableBytes > 0 { heldBackend = buffer }
    }
}
