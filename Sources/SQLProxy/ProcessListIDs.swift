import MySQLWire
import NIOCore

/// `SHOW [FULL] PROCESSLIST` through the proxy shows each proxy session under the id its client knows (the
/// greeting's, `CONNECTION_ID()`'s, the one `KILL` takes), not its server thread's: a client finds its own
/// row, and an id read there and given to `KILL` names the session that was shown. Threads that are no
/// proxy session's (replication, other clients of the server) keep the server's ids.
enum ProcessListIDs {
    /// Whether a COM_QUERY payload (command byte first) is one `SHOW [FULL] PROCESSLIST` statement.
    static func isShowProcessList(_ payload: ByteBuffer) -> Bool {
        // (Asked of every query the fast relay carries: a scan without allocating comes first.)
        guard payload.readableBytes > 1, payload.readableBytes < 1_024,
            payload.withUnsafeReadableBytes({ SQLRewriter.containsIgnoringCase($0, "processlist") }),
            let text = payload.getBytes(at: payload.readerIndex + 1, length: payload.readableBytes - 1)
        else { return false }
        var words = SQLRewriter.tokenize(text)
        if let last = words.last, last.kind == .symbol, text[last.range.lowerBound] == UInt8(ascii: ";") {
            words.removeLast()
        }
        let expected: [StaticString] = words.count == 3 ? ["show", "full", "processlist"] : ["show", "processlist"]
        guard words.count == expected.count else { return false }
        return zip(words, expected).allSatisfy { token, word in
            token.kind == .word && SQLLexer.equalsIgnoringCase(text[token.range], word)
        }
    }

    /// The whole answer to `SHOW [FULL] PROCESSLIST` (packets with headers) with each row's `Id` that
    /// `proxyID` maps replaced; nil when nothing changes or the answer is not the expected result set (an
    /// ERR, a first column not named `Id`, bytes that are not whole packets), which then passes unchanged.
    static func rewrite(_ answer: ByteBuffer, deprecateEOF: Bool, proxyID: (UInt64) -> UInt32?) -> ByteBuffer? {
        guard let packets = Self.packets(answer), var count = packets.first?.payload,
            let columns = count.readLengthEncodedInteger(), columns > 0, packets.count > Int(columns) + 1,
            firstColumnIsID(packets[1].payload)
        else { return nil }
        var changed = false
        let firstRow = 1 + Int(columns) + (deprecateEOF ? 0 : 1)
        var output = ByteBuffer()
        output.reserveCapacity(answer.readableBytes + 64)
        for (index, packet) in packets.enumerated() {
            var payload = packet.payload
            if index >= firstRow, let header = payload.getInteger(at: payload.readerIndex, as: UInt8.self),
                header != 0xFE, header != 0xFF, header != 0xFB, let mapped = mappedRow(payload, proxyID)
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

    /// Whether a column definition (protocol 4.1) names its column `Id`.
    private static func firstColumnIsID(_ definition: ByteBuffer) -> Bool {
        var definition = definition
        for _ in 0..<4 {  // catalog, schema, table, original table
            guard let length = definition.readLengthEncodedInteger(), definition.readSlice(length: Int(length)) != nil
            else { return false }
        }
        guard let length = definition.readLengthEncodedInteger(), let name = definition.readString(length: Int(length))
        else { return false }
        return name.lowercased() == "id"
    }

    /// A text row whose first field, a server thread id, `proxyID` maps: the row with the proxy's id.
    private static func mappedRow(_ row: ByteBuffer, _ proxyID: (UInt64) -> UInt32?) -> ByteBuffer? {
        var rest = row
        guard let length = rest.readLengthEncodedInteger(), length <= 20,
            let digits = rest.readString(length: Int(length)),
            let thread = UInt64(digits), let id = proxyID(thread)
        else { return nil }
        var mapped = ByteBuffer()
        mapped.reserveCapacity(row.readableBytes + 4)
        mapped.writeLengthEncodedString(String(id))
        mapped.writeBuffer(&rest)
        return mapped
    }
}
