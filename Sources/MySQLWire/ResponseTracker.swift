public import NIOCore

/// Knows where the server's response to one command ends, so a proxy can relay packets without
/// decoding rows and know when the backend is free again (and what the final status flags were).
///
/// Feed it every server packet of the response in order. Handles OK/ERR answers, text and binary result
/// sets (with or without `CLIENT_DEPRECATE_EOF`), several result sets (`SERVER_MORE_RESULTS_EXISTS`),
/// prepared-statement responses, cursors and `COM_STMT_FETCH`, `COM_STATISTICS`, `COM_FIELD_LIST` and the
/// `LOAD DATA LOCAL INFILE` exchange, and the event stream of a binlog dump.
public struct ResponseTracker: Sendable {
    public enum Outcome: Hashable, Sendable {
        /// More packets of this response follow.
        case inProgress
        /// The response is complete; the status flags of its last OK/EOF (nil after ERR or for responses
        /// without flags).
        case finished(StatusFlags?)
        /// The server asked for a local file (`0xFB`): relay the client's file packets, then call
        /// `clientFinishedLocalInfile()`.
        case localInfileRequested
        case protocolViolation(String)
    }

    private enum Phase: Sendable, Hashable {
        /// Waiting for the first packet of a (possibly further) result.
        case start
        case columnDefinitions(remaining: UInt64, thenRows: Bool)
        case columnsEOF(thenRows: Bool)
        case rows
        case prepareDefinitions(params: UInt64, columns: UInt64)
        case prepareParamsEOF(columns: UInt64)
        case prepareColumnsEOF
        case localInfile
        case awaitingLocalInfileResult
        case singlePacket
        case fieldList
        /// A binlog dump's events (each packet `0x00` and an event) until an EOF or ERR; without the
        /// non-blocking flag the server never ends it.
        case binlogEvents
        case done
    }

    /// How many leading bytes of a packet `serverPacket(prefix:length:)` looks at, at most.
    public static let prefixLength = 32

    public let command: Command
    public let capabilities: CapabilityFlags
    /// From a `COM_STMT_PREPARE` response's OK: the statement's id and its parameter and column counts.
    public private(set) var prepared: PreparedStatementOK?

    public struct PreparedStatementOK: Hashable, Sendable {
        public var statementID: UInt32
        public var columns: UInt16
        public var params: UInt16

        public init(statementID: UInt32, columns: UInt16, params: UInt16) {
            self.statementID = statementID
            self.columns = columns
            self.params = params
        }
    }
    private var phase: Phase
    private var deprecateEOF: Bool { capabilities.contains(.deprecateEOF) }

    /// Whether the command expects any response at all (`COM_QUIT`, `COM_STMT_CLOSE` and
    /// `COM_STMT_SEND_LONG_DATA` do not).
    public static func expectsResponse(_ command: Command) -> Bool {
        switch command {
        case .quit, .statementClose, .statementSendLongData: false
        default: true
        }
    }

    /// Whether a `COM_STMT_EXECUTE` asked for a cursor (its flags byte; see `cursorRequested(inExecute:)`).
    public let cursorRequested: Bool

    public init(command: Command, capabilities: CapabilityFlags, cursorRequested: Bool = false) {
        self.command = command
        self.capabilities = capabilities
        self.cursorRequested = cursorRequested
        switch command {
        // One packet: the statistics string; the EOF (or OK) of COM_SET_OPTION and COM_DEBUG; or an ERR.
        case .statistics, .setOption, .debug: phase = .singlePacket
        case .fieldList: phase = .fieldList
        case .statementFetch: phase = .rows  // rows of the open cursor, then EOF (or ERR)
        case .binlogDump, .binlogDumpGTID: phase = .binlogEvents
        default: phase = .start
        }
    }

    /// Whether a `COM_STMT_EXECUTE` payload (command byte, statement id, flags, ...) asks for a cursor:
    /// read-only, for update or scrollable.
    public static func cursorRequested(inExecute payload: ByteBuffer) -> Bool {
        guard let flags = payload.getInteger(at: payload.readerIndex + 5, as: UInt8.self) else { return false }
        return flags & 0x07 != 0
    }

    /// Whether a packet whose first byte is `header` is just another row of the result set being read
    /// (`serverPacket` would answer `.inProgress` and change nothing): a relay can skip the call for it.
    public func isPlainRow(header: UInt8) -> Bool {
        phase == .rows && header != 0xFE && header != 0xFF
    }

    public mutating func serverPacket(_ payload: ByteBuffer) -> Outcome {
        serverPacket(prefix: payload, length: payload.readableBytes)
    }

    /// The tracker needs only the first `ResponseTracker.prefixLength` bytes of a packet (or all of a
    /// shorter one) and the packet's length, so a relay can stream large packets without holding them.
    /// For a packet split into 16 MiB chunks, feed the first chunk only, with its chunk length.
    public mutating func serverPacket(prefix payload: ByteBuffer, length: Int) -> Outcome {
        let header = payload.getInteger(at: payload.readerIndex, as: UInt8.self)
        if isProgressReport(payload) {
            switch phase {
            // While the statement runs: before its answer, between result sets, after a LOCAL INFILE.
            case .start, .rows, .awaitingLocalInfileResult: return .inProgress
            default: break
            }
        }
        switch phase {
        case .done:
            return .protocolViolation("packet after the end of the response")

        case .singlePacket:
            phase = .done
            return .finished(nil)  // the statistics string, or an ERR

        case .fieldList:
            if header == 0xFF { return finish(nil) }
            if isEndOfRows(header, length) { return finish(status(payload, length: length)) }
            return .inProgress

        case .binlogEvents:
            switch header {
            case 0x00: return .inProgress
            case 0xFF: return finish(nil)
            case _ where isEndOfRows(header, length): return finish(status(payload, length: length))
            default: return .protocolViolation("a binlog event that does not start with 0x00")
            }

        case .start:
            switch header {
            case 0x00 where command == .statementPrepare:
                var buffer = payload
                buffer.moveReaderIndex(forwardBy: 1)
                guard let id = buffer.readInteger(endianness: .little, as: UInt32.self),
                    let columns = buffer.readInteger(endianness: .little, as: UInt16.self),
                    let params = buffer.readInteger(endianness: .little, as: UInt16.self)
                else { return .protocolViolation("short COM_STMT_PREPARE response") }
                prepared = PreparedStatementOK(statementID: id, columns: columns, params: params)
                return prepareNext(params: UInt64(params), columns: UInt64(columns))
            case 0x00:
                let flags = status(payload, length: length)
                return flags?.contains(.moreResultsExist) == true ? .inProgress : finish(flags)
            case 0xFF:
                return finish(nil)
            case 0xFB where command == .query:
                phase = .localInfile
                return .localInfileRequested
            case 0xFE:
                // An EOF (or, with CLIENT_DEPRECATE_EOF, an OK with the 0xFE header) answers COM_SHUTDOWN and
                // the like; as a column count, 0xFE would announce more than 16 million columns.
                return finish(status(payload, length: length))
            case .some:
                var buffer = payload
                guard let count = buffer.readLengthEncodedInteger(), count > 0 else {
                    return .protocolViolation("bad column count")
                }
                phase = .columnDefinitions(remaining: count, thenRows: command != .statementPrepare)
                return .inProgress
            case nil:
                return .protocolViolation("empty packet")
            }

        case .columnDefinitions(let remaining, let thenRows):
            // (A definition starts with its catalog's length, never 0xFF.)
            if header == 0xFF { return finish(nil) }
            if remaining > 1 {
                phase = .columnDefinitions(remaining: remaining - 1, thenRows: thenRows)
                return .inProgress
            }
            if deprecateEOF {
                return afterColumns(cursorStatus: nil)
            }
            phase = .columnsEOF(thenRows: thenRows)
            return .inProgress

        case .columnsEOF:
            // A statement may fail after its columns were sent: an execute opening a cursor, whose rows are
            // computed before the EOF (a subquery returning two rows, an error in a stored function).
            if header == 0xFF { return finish(nil) }
            guard Packets.EOFPacket.isEOF(header: header, length: length) else {
                return .protocolViolation("missing EOF after column definitions")
            }
            return afterColumns(cursorStatus: status(payload, length: length))

        case .rows:
            if header == 0xFF { return finish(nil) }
            if isEndOfRows(header, length) {
                let flags = status(payload, length: length)
                if flags?.contains(.moreResultsExist) == true {
                    phase = .start
                    return .inProgress
                }
                return finish(flags)
            }
            return .inProgress

        case .prepareDefinitions(let params, let columns):
            if params > 0 {
                if params == 1 && !deprecateEOF {
                    phase = .prepareParamsEOF(columns: columns)
                    return .inProgress
                }
                return prepareNext(params: params - 1, columns: columns)
            }
            if columns == 1 && !deprecateEOF {
                phase = .prepareColumnsEOF
                return .inProgress
            }
            return prepareNext(params: 0, columns: columns - 1)

        case .prepareParamsEOF(let columns):
            guard Packets.EOFPacket.isEOF(header: header, length: length) else {
                return .protocolViolation("missing EOF after parameters")
            }
            return prepareNext(params: 0, columns: columns)

        case .prepareColumnsEOF:
            guard Packets.EOFPacket.isEOF(header: header, length: length) else {
                return .protocolViolation("missing EOF after columns")
            }
            return finish(nil)

        case .localInfile:
            return .protocolViolation("server packet while the client sends its file")

        case .awaitingLocalInfileResult:
            if header == 0xFF { return finish(nil) }
            guard header == 0x00 else { return .protocolViolation("expected OK after LOAD DATA LOCAL") }
            let flags = status(payload, length: length)
            if flags?.contains(.moreResultsExist) == true {
                phase = .start
                return .inProgress
            }
            return finish(flags)
        }
    }

    /// Whether `payload` (or its first bytes) is a MariaDB progress report: an ERR packet with error code
    /// 0xFFFF, which the server sends only to clients that negotiated `mariaDBProgress`, ahead of the
    /// statement's real answer. It neither ends nor starts anything.
    public func isProgressReport(_ payload: ByteBuffer) -> Bool {
        capabilities.contains(.mariaDBProgress) && payload.getInteger(at: payload.readerIndex, as: UInt8.self) == 0xFF
            && payload.getInteger(at: payload.readerIndex + 1, endianness: .little, as: UInt16.self) == 0xFFFF
    }

    /// Whether the answer is a binlog dump's event stream: the client's packets meanwhile (a semi-synchronous
    /// replica's acknowledgements) are for the server as they are, not commands.
    public var isBinlogStream: Bool { phase == .binlogEvents }

    /// The client sent the empty packet that ends its file: the server answers with OK or ERR next.
    public mutating func clientFinishedLocalInfile() {
        if phase == .localInfile { phase = .awaitingLocalInfileResult }
    }

    private mutating func afterColumns(cursorStatus: StatusFlags?) -> Outcome {
        guard command != .statementPrepare else { return finish(nil) }
        // An execute that opened a cursor sends no rows now; COM_STMT_FETCH brings them. Only one that asked
        // for a cursor: a CALL's result sets may carry SERVER_STATUS_CURSOR_EXISTS from a cursor the procedure
        // declared, with their rows following (and more results after them).
        if command == .statementExecute, cursorRequested, let cursorStatus, cursorStatus.contains(.cursorExists),
            !cursorStatus.contains(.moreResultsExist)
        {
            return finish(cursorStatus)
        }
        phase = .rows
        return .inProgress
    }

    /// Definitions still to come after a prepare response header or a group's EOF.
    private mutating func prepareNext(params: UInt64, columns: UInt64) -> Outcome {
        if params == 0 && columns == 0 { return finish(nil) }
        phase = .prepareDefinitions(params: params, columns: columns)
        return .inProgress
    }

    private mutating func finish(_ status: StatusFlags?) -> Outcome {
        phase = .done
        return .finished(status)
    }

    /// EOF (`0xFE`, under 9 bytes) or, with `CLIENT_DEPRECATE_EOF`, an OK packet with the `0xFE` header.
    private func isEndOfRows(_ header: UInt8?, _ length: Int) -> Bool {
        if deprecateEOF { return header == 0xFE && length < 0xFF_FFFF }
        return Packets.EOFPacket.isEOF(header: header, length: length)
    }

    /// Status flags of an OK or EOF packet.
    private func status(_ payload: ByteBuffer, length: Int) -> StatusFlags? {
        var buffer = payload
        guard let header = buffer.readInteger(as: UInt8.self) else { return nil }
        if Packets.EOFPacket.isEOF(header: header, length: length) {
            // (A server's EOF may be shorter than 5 bytes: then it has no status.)
            guard buffer.readInteger(endianness: .little, as: UInt16.self) != nil else { return nil }  // warnings
            return buffer.readInteger(endianness: .little, as: UInt16.self).map(StatusFlags.init(rawValue:))
        }
        guard buffer.readLengthEncodedInteger() != nil, buffer.readLengthEncodedInteger() != nil else { return nil }
        return buffer.readInteger(endianness: .little, as: UInt16.self).map(StatusFlags.init(rawValue:))
    }
}
