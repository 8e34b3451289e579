import MySQLWire
import NIOCore

/// Thread lists through the proxy show each proxy session under the id its client knows (the greeting's,
/// `CONNECTION_ID()`'s, the one `KILL` takes), not its server thread's: a client finds its own row, and an id
/// read there and given to `KILL` names the session that was shown. Threads that are no proxy session's
/// (replication, other clients of the server) keep the server's ids.
///
/// Two kinds of query list threads: `SHOW [FULL] PROCESSLIST` (its first column, `Id`) and any single
/// statement that reads `information_schema.PROCESSLIST` (each result column the server says is that table's
/// `ID`, whatever the query does with it). In the latter, `CONNECTION_ID()` is left to the server
/// (`SQLRewriter`), so `WHERE ID = CONNECTION_ID()` finds the session's own row, which then shows the proxy's id.
enum ProcessListIDs {
    /// Whether a COM_QUERY payload (command byte first) lists threads: one `SHOW [FULL] PROCESSLIST`, or one
    /// statement that names a `PROCESSLIST` table.
    static func listsThreads(_ payload: ByteBuffer) -> Bool {
        // (Asked of every query the fast relay carries: a scan without allocating comes first.)
        guard payload.readableBytes > 1, payload.readableBytes < maximumStatement,
            payload.withUnsafeReadableBytes({ SQLRewriter.containsIgnoringCase($0, "processlist") }),
            let text = payload.getBytes(at: payload.readerIndex + 1, length: payload.readableBytes - 1)
        else { return false }
        var tokens = SQLRewriter.tokenize(text)
        if let last = tokens.last, last.kind == .symbol, text[last.range.lowerBound] == UInt8(ascii: ";") {
            tokens.removeLast()
        }
        // (`SHOW [FULL] PROCESSLIST` names it too.)
        return SQLRewriter.statementStarts(tokens, text).count == 1 && namesProcessListTable(tokens, text)
    }

    /// Statements longer than this are not looked at.
    static let maximumStatement = 4_096

    /// Whether the tokens name a table `PROCESSLIST` (bare or quoted, in any schema: the server decides which).
    static func namesProcessListTable(_ tokens: [SQLLexer.Token], _ text: [UInt8]) -> Bool {
        tokens.contains { token in
            switch token.kind {
            case .word:
                return SQLLexer.equalsIgnoringCase(text[token.range], "processlist")
            case .quoted where text[token.range.lowerBound] == UInt8(ascii: "`"):
                return SQLLexer.equalsIgnoringCase(text[token.range].dropFirst().dropLast(), "processlist")
            default:
                return false
            }
        }
    }

    /// The whole answer to a thread list (packets with headers) with each id that `proxyID` maps replaced, in
    /// the columns that hold thread ids; nil when nothing changes or the answer is not a text result set (an
    /// ERR, an OK, bytes that are not whole packets), which then passes unchanged.
    static func rewrite(_ answer: ByteBuffer, deprecateEOF: Bool, proxyID: (UInt64) -> UInt32?) -> ByteBuffer? {
        guard let packets = Self.packets(answer), var count = packets.first?.payload,
            let columns = count.readLengthEncodedInteger(), columns > 0, columns < 4_096,
            packets.count > Int(columns) + 1
        else { return nil }
        let definitions = packets[1...Int(columns)].map { ColumnOrigin($0.payload) }
        var idColumns = Set(definitions.indices.filter { definitions[$0]?.isProcessListID == true })
        // SHOW PROCESSLIST's columns come from no table: its first is named `Id`.
        if idColumns.isEmpty, definitions.first??.name.lowercased() == "id", definitions.first??.table == "" {
            idColumns = [0]
        }
        guard !idColumns.isEmpty else { return nil }
        var changed = false
        let firstRow = 1 + Int(columns) + (deprecateEOF ? 0 : 1)
        var output = ByteBuffer()
        output.reserveCapacity(answer.readableBytes + 64)
        for (index, packet) in packets.enumerated() {
            var payload = packet.payload
            if index >= firstRow, let header = payload.getInteger(at: payload.readerIndex, as: UInt8.self),
                header != 0xFE, header != 0xFF,
                let mapped = mappedRow(payload, columns: Int(columns), ids: idColumns, proxyID)
            {
                payload = mapped
                changed = true
            }
            MySQLPacketEncoder.write(MySQLPacket(sequenceID: packet.sequenceID, payload: payload), into: &output)
        }
        return changed ? output : nil
    }

    /// The whole packets of `bytes`, continuation chunks joined; nil unless they end on a packet boundary.
    static func packets(_ bytes: ByteBuffer) -> [MySQLPacket]? {
        var input = bytes
        var decoder = MySQLPacketDecoder(maxPayloadSize: Int.max)
        var packets: [MySQLPacket] = []
        while let packet = try? decoder.decode(buffer: &input) { packets.append(packet) }
        return input.readableBytes == 0 ? packets : nil
    }

    /// Where a result column comes from (protocol 4.1 column definition).
    struct ColumnOrigin {
        var schema: String
        var table: String
        var originalTable: String
        var name: String
        var originalName: String

        init?(_ definition: ByteBuffer) {
            var definition = definition
            var fields: [String] = []
            for _ in 0..<6 {  // catalog, schema, table, original table, name, original name
                guard let length = definition.readLengthEncodedInteger(), length < 1_024,
                    let field = definition.readString(length: Int(length))
                else { return nil }
                fields.append(field)
            }
            (schema, table, originalTable, name, originalName) = (fields[1], fields[2], fields[3], fields[4], fields[5])
        }

        /// `information_schema.PROCESSLIST.ID`, under whatever alias.
        var isProcessListID: Bool {
            schema.lowercased() == "information_schema" && originalTable.uppercased() == "PROCESSLIST"
                && originalName.uppercased() == "ID"
        }
    }

    /// A text row with the thread ids in `ids` (column indexes) that `proxyID` maps replaced; nil when none is.
    private static func mappedRow(
        _ row: ByteBuffer, columns: Int, ids: Set<Int>, _ proxyID: (UInt64) -> UInt32?
    ) -> ByteBuffer? {
        var rest = row
        var mapped = ByteBuffer()
        mapped.reserveCapacity(row.readableBytes + 4)
        var changed = false
        for column in 0..<columns {
            if rest.getInteger(at: rest.readerIndex, as: UInt8.self) == 0xFB {  // NULL
                rest.moveReaderIndex(forwardBy: 1)
                mapped.writeInteger(UInt8(0xFB))
                continue
            }
            guard let length = rest.readLengthEncodedInteger(), let field = rest.readSlice(length: Int(length)) else {
                return nil
            }
            if ids.contains(column), length <= 20,
                let thread = field.getString(at: field.readerIndex, length: field.readableBytes).flatMap(UInt64.init),
                let id = proxyID(thread)
            {
                mapped.writeLengthEncodedString(String(id))
                changed = true
            } else {
                mapped.writeLengthEncodedInteger(length)
                mapped.writeImmutableBuffer(field)
            }
        }
        guard rest.readableBytes == 0 else { return nil }
        return changed ? mapped : nil
    }
}
