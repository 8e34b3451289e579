import MySQLWire
import NIOCore

/// The command phase's bookkeeping, shared by the two drivers of a logged-in session: `ClientSession` on
/// SwiftNIO, and `FastRelay`, which carries quiet sessions' everyday commands outside NIO. Whoever drives
/// the session owns this value; it moves between them whole.
///
/// It decides nothing about sockets: it checks a client's command before it goes to the server, notes
/// what was sent, and follows the server's answers to know where each ends.
package struct CommandRelay {
    /// One tracker per command sent to the server and not fully answered yet, oldest first (clients may
    /// pipeline commands).
    var pending = CircularBuffer<ResponseTracker>()
    /// The first packet of the oldest pending response has not been seen yet.
    var atResponseStart = true
    var scanner = PacketStreamScanner()
    /// Whether the session could continue on another server connection.
    var portability = SessionPortability()
    /// The session's prepared statements, prepared again after a move.
    var statements = PreparedStatements()
    /// The server asked for a LOCAL INFILE: the client's next packets are the file, up to an empty one.
    var sendingLocalFile = false
    /// The sequence id the server expects on the next packet of an exchange the client continues (LOAD DATA
    /// LOCAL file packets); compressed clients' inner ids cannot be trusted for it.
    var nextBackendSequenceID: UInt8 = 0

    package init() {}

    /// Whether nothing is in flight: no answer pending and no file upload.
    var isIdle: Bool { pending.isEmpty && !sendingLocalFile }

    /// What becomes of a client's command (other than quit, change user and KILL, which the session handles).
    enum Check {
        /// Send it; `rewritten` is the payload to send instead of the client's, if any.
        case send(rewritten: ByteBuffer?)
        /// End the session with this ERR (the session cannot do what the statement needs).
        case refuse(Packets.ErrorPacket)
        /// The rewriter answered the client itself (an unknown KILL target): send nothing.
        case answered
    }

    /// Checks a command from the client before it goes to the server. `killTarget` maps a proxy connection
    /// id named by `KILL` in SQL to the server thread, or answers the client and returns nil.
    mutating func check(
        _ command: Command, payload: ByteBuffer, connectionID: UInt32,
        killTarget: (UInt32, _ connection: Bool) -> UInt32?
    ) -> Check {
        switch command {
        case .query, .statementPrepare:
            if let refusal = portability.refusal(command, payload: payload) { return .refuse(refusal) }
            var sent = payload
            var rewritten: ByteBuffer?
            switch SQLRewriter.rewrite(payload, connectionID: connectionID, killTarget: killTarget) {
            case .unchanged:
                break
            case .rewritten(let payload):
                sent = payload
                rewritten = payload
            case .refused:
                return .answered
            }
            if command == .statementPrepare { statements.prepareSent(sent) }
            return .send(rewritten: rewritten)
        case .statementExecute, .statementSendLongData, .statementClose, .statementReset, .statementFetch,
            .statementBulkExecute:
            return .send(rewritten: statements.clientCommand(command, payload: payload))
        default:
            return .send(rewritten: nil)
        }
    }

    /// A command went to the server with `payload`.
    mutating func sent(_ command: Command, payload: ByteBuffer, capabilities: CapabilityFlags) {
        portability.commandSent(command, payload: payload)
        if ResponseTracker.expectsResponse(command) {
            pending.append(
                ResponseTracker(
                    command: command, capabilities: capabilities,
                    cursorRequested: command == .statementExecute && ResponseTracker.cursorRequested(inExecute: payload)
                ))
        }
    }

    /// A packet of the client's LOCAL INFILE upload (payload `length` bytes): returns the sequence id it
    /// takes on the server hop.
    mutating func localFilePacket(length: Int) -> UInt8 {
        if length == 0 {
            sendingLocalFile = false
            if !pending.isEmpty { pending[pending.startIndex].clientFinishedLocalInfile() }
        }
        let sequenceID = nextBackendSequenceID
        nextBackendSequenceID &+= UInt8(truncatingIfNeeded: length / MySQLPacket.maxChunk + 1)
        return sequenceID
    }

    /// What `scanAnswers` found in a stretch of the server's bytes.
    struct AnswerScan {
        /// How many bytes from the reader index go to the client now (the rest waits for more bytes, or is
        /// what `stop` is about).
        var forwardable = 0
        /// Prepare answers whose statement id the client knows by another id (after a move): where the id
        /// is in the buffer, and the client's id.
        var statementIDs: [(index: Int, clientID: UInt32)] = []
        var stop: Stop?
    }

    enum Stop {
        /// A packet the answers cannot contain starts at `start`; what came before it is sound. When the
        /// client is waiting for an answer, an ERR with `errorSequenceID` takes its place (a server may end
        /// an answer with ERR at any packet, as it does when a statement fails while sending rows).
        case broken(start: Int, errorSequenceID: UInt8?, reason: String)
        /// A packet the fast relay leaves to `ClientSession` starts at `start` (a LOCAL INFILE request, or a
        /// broken answer); nothing of it has been noted.
        case handOver(start: Int)
    }

    private struct Stopped: Error {}

    /// Follows the server's bytes from `buffer`'s reader index: which may go to the client, and where each
    /// answer ends. With `handOverUnusual`, it stops before a packet that needs `ClientSession`.
    mutating func scanAnswers(_ buffer: ByteBuffer, metrics: ProxyMetrics, handOverUnusual: Bool) -> AnswerScan {
        var result = AnswerScan()
        let prefixLength = scanner.prefixLength
        // The oldest response's tracker is worked on as a local value (put back below), so the packets of a
        // long result set cost no access to stored properties.
        var current = pending.popFirst()
        var startsResponse = atResponseStart
        do {
            result.forwardable = try scanner.scan(buffer) { packet in
                guard !packet.isContinuation else { return true }
                let start = packet.payloadIndex - 4
                guard var tracker = current else {
                    result.stop =
                        handOverUnusual
                        ? .handOver(start: start)
                        : .broken(
                            start: start, errorSequenceID: nil, reason: "the server sent a packet nobody asked for")
                    throw Stopped()
                }
                let header = packet.length > 0 ? buffer.getInteger(at: packet.payloadIndex, as: UInt8.self) : nil
                if let header, tracker.isPlainRow(header: header) { return true }
                let prefix = buffer.getSlice(at: packet.payloadIndex, length: min(packet.length, prefixLength))!
                let outcome = tracker.serverPacket(prefix: prefix, length: packet.length)
                if outcome == .inProgress, header == 0xFF, tracker.isProgressReport(prefix) {
                    current = tracker
                    return true  // not the answer's first packet, nor an error
                }
                switch outcome {
                case .inProgress, .finished:
                    break
                case .localInfileRequested, .protocolViolation:
                    if handOverUnusual {
                        result.stop = .handOver(start: start)
                        throw Stopped()
                    }
                }
                let first = startsResponse
                startsResponse = false
                current = tracker
                if first, header == 0xFF, packet.length >= 3,
                    let errno = buffer.getInteger(at: packet.payloadIndex + 1, endianness: .little, as: UInt16.self)
                {
                    metrics.error(errno)
                }
                if first, tracker.command == .statementPrepare,
                    let clientID = statements.prepareAnswered(tracker.prepared)
                {
                    result.statementIDs.append((packet.payloadIndex + 1, clientID))
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
                    result.stop = .broken(start: start, errorSequenceID: packet.sequenceID, reason: reason)
                    throw Stopped()
                }
                return true
            }
        } catch {
            if case .handOver(let start)? = result.stop {
                result.forwardable = start - buffer.readerIndex
                // Stopped before a packet's header: nothing of a packet is partly through.
                scanner = PacketStreamScanner(prefixLength: prefixLength)
            }
        }
        if let current { pending.prepend(current) }
        atResponseStart = startsResponse
        return result
    }
}
