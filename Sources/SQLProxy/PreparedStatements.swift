package import MySQLWire
package import NIOCore

/// A session's prepared statements (`COM_STMT_PREPARE`), kept so that a move to a new server connection
/// can prepare them again there (`ClientSession+Move`).
///
/// The client keeps the ids it was given. Until a move, they are the server's own, and the proxy changes
/// nothing. After a move gives the statements other ids, the proxy maps the id in every statement command
/// (and gives a statement prepared later an id no other statement of the client has). On a statement's
/// first execute on the new connection it sends the parameter types again when the client does not (a
/// client sends them once per statement).
///
/// State the proxy cannot recreate makes the session unmovable (`obstacle`): long data sent and not yet
/// executed, a cursor, `COM_STMT_BULK_EXECUTE`, and more statements than it keeps.
package struct PreparedStatements {
    struct Statement {
        /// The `COM_STMT_PREPARE` packet as sent to the server (a copy of its own).
        var prepare: ByteBuffer
        var params: UInt16
        var columns: UInt16
        /// The statement's id on the current server connection.
        var serverID: UInt32
        /// The parameter types the client sent last (2 bytes per parameter).
        var types: [UInt8]?
        /// The current connection's statement has parameter types.
        var typesBound = false
        /// `COM_STMT_SEND_LONG_DATA` since the last execute or reset: the server holds data the proxy does not.
        var hasLongData = false
        /// The statement reads `LAST_INSERT_ID()` (which a move does not carry).
        var readsLastInsertID = false
    }

    package init() {}

    /// By the id the client knows.
    private(set) var statements: [UInt32: Statement] = [:]
    /// Some client id differs from its statement's server id.
    private(set) var remapped = false
    /// Prepares sent and not answered yet, oldest first.
    private var awaiting: [ByteBuffer] = []
    private var bytes = 0
    private var stickyObstacle: String?
    private var nextClientID: UInt32 = 0x4000_0000

    static let maximumStatements = 1024
    static let maximumBytes = 1 << 20
    /// An id no server hands out: commands for ids the client was never given go there after a move.
    static let unknownID: UInt32 = 0xFFFF_FFFF

    /// Why the statements cannot follow the session to a new connection, or nil when they can.
    package var obstacle: String? {
        if let stickyObstacle { return stickyObstacle }
        return statements.values.contains(where: \.hasLongData) ? "long data sent for a prepared statement" : nil
    }

    /// A `COM_STMT_PREPARE` goes to the server; `payload` is the command packet.
    package mutating func prepareSent(_ payload: ByteBuffer) {
        awaiting.append(ByteBufferAllocator().buffer(buffer: payload))  // not a slice of the read buffer
    }

    /// The server answered the oldest prepare (`ok` nil after an ERR). Returns the id to give the client when
    /// it is not the server's.
    package mutating func prepareAnswered(_ ok: ResponseTracker.PreparedStatementOK?) -> UInt32? {
        guard !awaiting.isEmpty else { return nil }
        var prepare = awaiting.removeFirst()
        guard let ok else { return nil }
        if statements.count >= Self.maximumStatements || bytes + prepare.readableBytes > Self.maximumBytes {
            stickyObstacle =
                stickyObstacle ?? "more than \(Self.maximumStatements) prepared statements or 1 MiB of their text"
            // Ids the server gave are the client's: nothing to keep. After a move the id must still be mapped
            // (the session cannot move again, so its text is not needed).
            guard remapped else { return nil }
            prepare = ByteBuffer()
        }
        var clientID = ok.statementID
        if remapped && statements[clientID] != nil {
            while statements[nextClientID] != nil || nextClientID == Self.unknownID { nextClientID &+= 1 }
            clientID = nextClientID
            nextClientID &+= 1
        }
        statements[clientID] = Statement(
            prepare: prepare, params: ok.params, columns: ok.columns, serverID: ok.statementID,
            readsLastInsertID: StatementClassifier.readsLastInsertID(prepare))
        bytes += prepare.readableBytes
        return clientID == ok.statementID ? nil : clientID
    }

    /// A statement command from the client (execute, long data, reset, close, fetch, bulk execute): notes what
    /// it does, and returns the packet to send instead when the proxy must change it.
    package mutating func clientCommand(_ command: Command, payload: ByteBuffer) -> ByteBuffer? {
        let start = payload.readerIndex
        guard let clientID = payload.getInteger(at: start + 1, endianness: .little, as: UInt32.self) else { return nil }
        let serverID = statements[clientID]?.serverID ?? (remapped ? Self.unknownID : clientID)
        var rewritten: ByteBuffer?
        switch command {
        case .statementClose:
            if let closed = statements.removeValue(forKey: clientID) { bytes -= closed.prepare.readableBytes }
        case .statementReset:
            statements[clientID]?.hasLongData = false
        case .statementSendLongData:
            statements[clientID]?.hasLongData = true
        case .statementBulkExecute:
            stickyObstacle = stickyObstacle ?? "COM_STMT_BULK_EXECUTE"
        case .statementFetch:
            break
        case .statementExecute:
            rewritten = executed(clientID, payload: payload)
        default:
            return nil
        }
        guard serverID != clientID else { return rewritten }
        var packet = rewritten ?? ByteBufferAllocator().buffer(buffer: payload)
        packet.setInteger(serverID, at: packet.readerIndex + 1, endianness: .little)
        return packet
    }

    /// Notes an execute's cursor and parameter types; returns the packet with the types added when the
    /// statement's current server connection has none and the client sent none.
    private mutating func executed(_ clientID: UInt32, payload: ByteBuffer) -> ByteBuffer? {
        let start = payload.readerIndex
        if let flags = payload.getInteger(at: start + 5, as: UInt8.self), flags & 0x07 != 0 {
            stickyObstacle = stickyObstacle ?? "a cursor"
        }
        guard var statement = statements[clientID] else { return nil }
        defer { statements[clientID] = statement }
        statement.hasLongData = false
        let params = Int(statement.params)
        guard params > 0 else { return nil }
        // Command, id, flags, iteration count, the NULL bitmap; then new_params_bound_flag and the types.
        let boundFlagIndex = start + 10 + (params + 7) / 8
        guard let bound = payload.getInteger(at: boundFlagIndex, as: UInt8.self) else { return nil }
        if bound == 1 {
            statement.types = payload.getBytes(at: boundFlagIndex + 1, length: 2 * params)
            statement.typesBound = statement.types != nil
            return nil
        }
        guard !statement.typesBound, let types = statement.types else { return nil }
        statement.typesBound = true
        var packet = ByteBufferAllocator().buffer(capacity: payload.readableBytes + types.count)
        packet.writeImmutableBuffer(payload.getSlice(at: start, length: boundFlagIndex - start)!)
        packet.writeInteger(UInt8(1))
        packet.writeBytes(types)
        packet.writeImmutableBuffer(
            payload.getSlice(at: boundFlagIndex + 1, length: payload.readableBytes - (boundFlagIndex + 1 - start))!)
        return packet
    }

    /// Some statement reads `LAST_INSERT_ID()`.
    var anyReadsLastInsertID: Bool { statements.values.contains(where: \.readsLastInsertID) }

    /// The prepares to run again on a new connection, in the order the statements were prepared.
    package var replayOrder: [UInt32] {
        statements.keys.sorted { statements[$0]!.serverID < statements[$1]!.serverID }
    }

    /// A statement was prepared again on a new connection; returns why that does not do, or nil.
    package mutating func preparedAgain(_ clientID: UInt32, _ ok: ResponseTracker.PreparedStatementOK) -> String? {
        guard var statement = statements[clientID] else { return nil }
        guard ok.params == statement.params, ok.columns == statement.columns else {
            return "a prepared statement has \(ok.params) parameters and \(ok.columns) columns on the new connection, "
                + "not \(statement.params) and \(statement.columns)"
        }
        statement.serverID = ok.statementID
        statement.typesBound = false
        statement.hasLongData = false
        statements[clientID] = statement
        remapped = statements.contains { $0.key != $0.value.serverID }
        return nil
    }

    /// The server closed every statement (`COM_RESET_CONNECTION`, a change of user).
    mutating func reset() {
        statements = [:]
        remapped = false
        bytes = 0
        stickyObstacle = nil
    }
}
