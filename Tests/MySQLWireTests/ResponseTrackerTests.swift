import MySQLWire
import NIOCore
import Testing

@Suite("Response tracker")
struct ResponseTrackerTests {
    static func ok(_ status: StatusFlags, header: UInt8 = 0x00) -> ByteBuffer {
        var buffer = ByteBuffer()
        Packets.OKPacket(status: status).encode(into: &buffer, capabilities: [.protocol41], header: header)
        return buffer
    }

    static func eof(_ status: StatusFlags) -> ByteBuffer {
        var buffer = ByteBuffer(bytes: [0xFE, 0x00, 0x00])
        buffer.writeInteger(status.rawValue, endianness: .little)
        return buffer
    }

    static let err: ByteBuffer = {
        var buffer = ByteBuffer()
        Packets.ErrorPacket(errorCode: 1064, sqlState: "42000", message: "syntax").encode(
            into: &buffer, capabilities: [.protocol41])
        return buffer
    }()

    static func columnCount(_ count: UInt64) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeLengthEncodedInteger(count)
        return buffer
    }

    static let column = ByteBuffer(bytes: [0x03, 0x64, 0x65, 0x66, 0x00])
    static let row = ByteBuffer(bytes: [0x01, 0x31])

    /// Feeds packets; returns every outcome.
    static func run(_ tracker: inout ResponseTracker, _ packets: [ByteBuffer]) -> [ResponseTracker.Outcome] {
        packets.map { tracker.serverPacket($0) }
    }

    @Test("OK and ERR end a simple response; the OK's status flags are reported")
    func okAndError() {
        var tracker = ResponseTracker(command: .query, capabilities: [.protocol41])
        #expect(
            tracker.serverPacket(Self.ok([.autocommit, .inTransaction])) == .finished([.autocommit, .inTransaction]))
        #expect(tracker.serverPacket(Self.ok([])) == .protocolViolation("packet after the end of the response"))
        var failing = ResponseTracker(command: .ping, capabilities: [.protocol41])
        #expect(failing.serverPacket(Self.err) == .finished(nil))
    }

    /// A MariaDB progress report: ERR header, error code 0xFFFF, stage 1 of 2, progress 12.345 %, info.
    static let progress = ByteBuffer(
        bytes: [0xFF, 0xFF, 0xFF, 0x01, 0x02, 0x39, 0x30, 0x00, 0x04] + Array("copy".utf8))

    @Test("progress reports (ERR 0xFFFF) neither end nor start an answer when the client negotiated them")
    func progressReports() {
        let capabilities: CapabilityFlags = [.protocol41, .mariaDBProgress]
        var alter = ResponseTracker(command: .query, capabilities: capabilities)
        #expect(alter.isProgressReport(Self.progress))
        #expect(!alter.isProgressReport(Self.err))
        #expect(
            Self.run(&alter, [Self.progress, Self.progress, Self.ok([.autocommit])]) == [
                .inProgress, .inProgress, .finished([.autocommit]),
            ])
        // Before a result set, and before a statement's own error.
        var select = ResponseTracker(command: .statementExecute, capabilities: capabilities)
        let outcomes = Self.run(&select, [Self.progress, Self.columnCount(1), Self.column, Self.eof([]), Self.row])
        #expect(outcomes.allSatisfy { $0 == .inProgress })
        #expect(select.serverPacket(Self.eof([.autocommit])) == .finished([.autocommit]))
        var failing = ResponseTracker(command: .query, capabilities: capabilities)
        #expect(Self.run(&failing, [Self.progress, Self.err]) == [.inProgress, .finished(nil)])
        // Between the results of a multi-statement query.
        var multi = ResponseTracker(command: .query, capabilities: capabilities)
        #expect(
            Self.run(&multi, [Self.ok([.moreResultsExist]), Self.progress, Self.ok([])]) == [
                .inProgress, .inProgress, .finished([]),
            ])
        // Without the capability the server sends none, and an ERR is an ERR whatever its code.
        var plain = ResponseTracker(command: .query, capabilities: [.protocol41])
        #expect(!plain.isProgressReport(Self.progress))
        #expect(plain.serverPacket(Self.progress) == .finished(nil))
    }

    @Test("a text result set ends at the EOF after the rows, with or without CLIENT_DEPRECATE_EOF")
    func textResultSet() {
        var classic = ResponseTracker(command: .query, capabilities: [.protocol41])
        let outcomes = Self.run(
            &classic,
            [
                Self.columnCount(2), Self.column, Self.column, Self.eof([.autocommit]), Self.row, Self.row, Self.row,
                Self.eof([.inTransaction]),
            ])
        #expect(outcomes.dropLast().allSatisfy { $0 == .inProgress })
        #expect(outcomes.last == .finished([.inTransaction]))

        var modern = ResponseTracker(command: .query, capabilities: [.protocol41, .deprecateEOF])
        let modernOutcomes = Self.run(
            &modern, [Self.columnCount(2), Self.column, Self.column, Self.row, Self.ok([.autocommit], header: 0xFE)])
        #expect(modernOutcomes.last == .finished([.autocommit]))
        #expect(modernOutcomes.dropLast().allSatisfy { $0 == .inProgress })
    }

    @Test("several result sets (multi-statements, CALL) continue while SERVER_MORE_RESULTS_EXISTS is set")
    func multipleResults() {
        var tracker = ResponseTracker(command: .query, capabilities: [.protocol41])
        let outcomes = Self.run(
            &tracker,
            [
                Self.columnCount(1), Self.column, Self.eof([]), Self.row, Self.eof([.moreResultsExist]),
                Self.ok([.moreResultsExist]), Self.columnCount(1), Self.column, Self.eof([]), Self.eof([]),
            ])
        #expect(outcomes.last == .finished([]))
        #expect(outcomes.dropLast().allSatisfy { $0 == .inProgress })
        var error = ResponseTracker(command: .query, capabilities: [.protocol41])
        #expect(Self.run(&error, [Self.ok([.moreResultsExist]), Self.err]).last == .finished(nil))
    }

    @Test("a prepare response ends after its parameter and column definitions")
    func prepare() {
        func header(columns: UInt16, params: UInt16) -> ByteBuffer {
            var buffer = ByteBuffer(bytes: [0x00, 7, 0, 0, 0])
            buffer.writeInteger(columns, endianness: .little)
            buffer.writeInteger(params, endianness: .little)
            buffer.writeBytes([0x00, 0x00, 0x00])
            return buffer
        }
        var classic = ResponseTracker(command: .statementPrepare, capabilities: [.protocol41])
        let outcomes = Self.run(
            &classic,
            [header(columns: 1, params: 2), Self.column, Self.column, Self.eof([]), Self.column, Self.eof([])])
        #expect(outcomes.last == .finished(nil))
        #expect(outcomes.dropLast().allSatisfy { $0 == .inProgress })
        #expect(classic.prepared == .init(statementID: 7, columns: 1, params: 2))

        var modern = ResponseTracker(command: .statementPrepare, capabilities: [.protocol41, .deprecateEOF])
        let modernOutcomes = Self.run(&modern, [header(columns: 1, params: 2), Self.column, Self.column, Self.column])
        #expect(modernOutcomes.last == .finished(nil))

        var empty = ResponseTracker(command: .statementPrepare, capabilities: [.protocol41])
        #expect(empty.serverPacket(header(columns: 0, params: 0)) == .finished(nil))
        var failed = ResponseTracker(command: .statementPrepare, capabilities: [.protocol41])
        #expect(failed.serverPacket(Self.err) == .finished(nil))
        #expect(failed.prepared == nil)
    }

    @Test("an execute that opens a cursor ends after the column definitions; fetch ends at its EOF")
    func cursor() {
        var open = ByteBuffer(bytes: [Command.statementExecute.rawValue, 7, 0, 0, 0, 0x01, 1, 0, 0, 0])
        #expect(ResponseTracker.cursorRequested(inExecute: open))
        var execute = ResponseTracker(
            command: .statementExecute, capabilities: [.protocol41],
            cursorRequested: ResponseTracker.cursorRequested(inExecute: open))
        let outcomes = Self.run(&execute, [Self.columnCount(1), Self.column, Self.eof([.cursorExists, .autocommit])])
        #expect(outcomes.last == .finished([.cursorExists, .autocommit]))
        open.setInteger(UInt8(0), at: 5)
        #expect(!ResponseTracker.cursorRequested(inExecute: open))
        var fetch = ResponseTracker(command: .statementFetch, capabilities: [.protocol41])
        let binaryRow = ByteBuffer(bytes: [0x00, 0x00, 0x2A, 0x00, 0x00, 0x00])
        #expect(Self.run(&fetch, [binaryRow, binaryRow, Self.eof([.lastRowSent])]).last == .finished([.lastRowSent]))
    }

    /// Measured on MariaDB 10.11 (`main.ps_2myisam` and others with `--cursor-protocol`): an execute opening a
    /// cursor computes its rows before the columns' EOF, and a failure there comes as an ERR in its place.
    @Test("an ERR after or among the column definitions ends the answer")
    func errorAfterColumns() {
        for requested in [false, true] {
            var execute = ResponseTracker(
                command: .statementExecute, capabilities: [.protocol41], cursorRequested: requested)
            #expect(
                Self.run(&execute, [Self.columnCount(1), Self.column, Self.err]) == [
                    .inProgress, .inProgress, .finished(nil),
                ])
            var query = ResponseTracker(command: .query, capabilities: [.protocol41])
            #expect(
                Self.run(&query, [Self.columnCount(2), Self.column, Self.err]) == [
                    .inProgress, .inProgress, .finished(nil),
                ])
        }
    }

    /// Measured on MariaDB 10.11 (`main.sp-row` with `--ps-protocol`): a CALL of a procedure that declares
    /// a cursor answers with SERVER_STATUS_CURSOR_EXISTS on its result set's EOFs, rows included.
    @Test("a CALL's result set flagged CURSOR_EXISTS still has its rows when the execute asked for no cursor")
    func cursorFlagFromAProcedure() {
        let flagged: StatusFlags = [.cursorExists, .moreResultsExist, .autocommit, .noIndexUsed]
        let binaryRow = ByteBuffer(bytes: [0x00, 0x00, 0x0A, 0x00, 0x00, 0x00])
        for requested in [false, true] {
            var call = ResponseTracker(
                command: .statementExecute, capabilities: [.protocol41], cursorRequested: requested)
            let outcomes = Self.run(
                &call, [Self.columnCount(1), Self.column, Self.eof(flagged), binaryRow, Self.eof(flagged)])
            #expect(outcomes.allSatisfy { $0 == .inProgress }, "cursor requested: \(requested)")
            #expect(call.serverPacket(Self.ok([.autocommit])) == .finished([.autocommit]))
        }
    }

    @Test("LOAD DATA LOCAL: the file request, the client's data, then the server's OK")
    func localInfile() {
        var tracker = ResponseTracker(command: .query, capabilities: [.protocol41])
        var request = ByteBuffer(bytes: [0xFB])
        request.writeString("/tmp/data.csv")
        #expect(tracker.serverPacket(request) == .localInfileRequested)
        #expect(
            tracker.serverPacket(Self.ok([])) == .protocolViolation("server packet while the client sends its file"))
        var again = ResponseTracker(command: .query, capabilities: [.protocol41])
        _ = again.serverPacket(request)
        again.clientFinishedLocalInfile()
        #expect(again.serverPacket(Self.ok([.autocommit])) == .finished([.autocommit]))
    }

    @Test("commands without a response, and single-packet responses")
    func shapes() {
        #expect(!ResponseTracker.expectsResponse(.quit))
        #expect(!ResponseTracker.expectsResponse(.statementClose))
        #expect(!ResponseTracker.expectsResponse(.statementSendLongData))
        #expect(ResponseTracker.expectsResponse(.statementReset))
        var statistics = ResponseTracker(command: .statistics, capabilities: [.protocol41])
        #expect(statistics.serverPacket(ByteBuffer(string: "Uptime: 5  Threads: 1")) == .finished(nil))
    }

    @Test("a binlog dump's answer is its events (0x00 each) until an EOF or an ERR, however many")
    func binlogDump() {
        // An event packet: 0x00, then the event (timestamp, type, server id, size, ...); one that starts like an
        // OK with status flags must not end the stream.
        let event = ByteBuffer(bytes: [0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00, 0x2B, 0x00])
        for command in [Command.binlogDump, .binlogDumpGTID] {
            var dump = ResponseTracker(command: command, capabilities: [.protocol41])
            #expect(dump.isBinlogStream)
            #expect(Self.run(&dump, Array(repeating: event, count: 1000)).allSatisfy { $0 == .inProgress })
            #expect(dump.isBinlogStream)
            // Non-blocking dumps end with an EOF at the end of the binlog.
            #expect(dump.serverPacket(Self.eof([.autocommit])) == .finished([.autocommit]))
            #expect(!dump.isBinlogStream)
        }
        var failing = ResponseTracker(command: .binlogDump, capabilities: [.protocol41, .deprecateEOF])
        #expect(Self.run(&failing, [event, Self.err]) == [.inProgress, .finished(nil)])
        var ending = ResponseTracker(command: .binlogDump, capabilities: [.protocol41, .deprecateEOF])
        #expect(ending.serverPacket(Self.ok([], header: 0xFE)) == .finished([]))
        var broken = ResponseTracker(command: .binlogDump, capabilities: [.protocol41])
        guard case .protocolViolation = broken.serverPacket(Self.row) else {
            Issue.record("a packet that is no event, EOF or ERR is a violation")
            return
        }
        #expect(!ResponseTracker(command: .query, capabilities: [.protocol41]).isBinlogStream)
    }

    @Test("an EOF as the whole answer (COM_SHUTDOWN) ends it, with or without CLIENT_DEPRECATE_EOF")
    func eofAnswer() {
        var shutdown = ResponseTracker(command: .shutdown, capabilities: [.protocol41])
        #expect(shutdown.serverPacket(Self.eof([.autocommit])) == .finished([.autocommit]))
        var deprecated = ResponseTracker(command: .shutdown, capabilities: [.protocol41, .deprecateEOF])
        #expect(deprecated.serverPacket(Self.ok([.autocommit], header: 0xFE)) == .finished([.autocommit]))
        var refused = ResponseTracker(command: .shutdown, capabilities: [.protocol41])
        #expect(refused.serverPacket(Self.err) == .finished(nil))
    }

    @Test("a short EOF (fewer than 5 bytes, from a hostile or broken server) ends the answer with no status")
    func shortEOF() {
        // The fuzzer's crash: `fe` alone as the first packet of an answer made the status read trap.
        for bytes: [UInt8] in [[0xFE], [0xFE, 0x00], [0xFE, 0x00, 0x00], [0xFE, 0x00, 0x00, 0x02]] {
            var start = ResponseTracker(command: .query, capabilities: [.protocol41])
            #expect(start.serverPacket(ByteBuffer(bytes: bytes)) == .finished(nil))
            var rows = ResponseTracker(command: .query, capabilities: [.protocol41])
            #expect(
                Self.run(&rows, [Self.columnCount(1), Self.column, Self.eof([]), Self.row]).allSatisfy {
                    $0 == .inProgress
                })
            #expect(rows.serverPacket(ByteBuffer(bytes: bytes)) == .finished(nil))
        }
    }
}
