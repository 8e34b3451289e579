import MySQLWire
import NIOCore

/// A whole text result set held by a session, read and rewritten row by row: the answers whose rows the proxy
/// changes (thread lists' ids, `ProcessListIDs`; the `Compression` status row, `SessionStatus`).
enum TextResultSet {
    /// `answer` (whole packets with headers) with each row that `mapRow` changes replaced. `plan` reads the
    /// column definitions: nil when these are not the columns looked for, otherwise what `mapRow` needs to know
    /// of them. `mapRow` gets a row's payload and returns its replacement, or nil to leave it. Nil when nothing
    /// changes or the answer is not one text result set (an ERR, an OK, bytes that are not whole packets),
    /// which then passes unchanged.
    static func mapRows<Plan>(
        _ answer: ByteBuffer, deprecateEOF: Bool, plan: ([ColumnOrigin?]) -> Plan?,
        mapRow: (Plan, ByteBuffer) -> ByteBuffer?
    ) -> ByteBuffer? {
        guard let packets = Self.packets(answer), var count = packets.first?.payload,
            let columns = count.readLengthEncodedInteger(), columns > 0, columns < 4_096,
            packets.count > Int(columns) + 1,
            let plan = plan(packets[1...Int(columns)].map { ColumnOrigin($0.payload) })
        else { return nil }
        var changed = false
        let firstRow = 1 + Int(columns) + (deprecateEOF ? 0 : 1)
        var output = ByteBuffer()
        output.reserveCapacity(answer.readableBytes + 64)
        for (index, packet) in packets.enumerated() {
            var payload = packet.payload
            if index >= firstRow, let header = payload.getInteger(at: payload.readerIndex, as: UInt8.self),
                header != 0xFE, header != 0xFF, let mapped = mapRow(plan, payload)
            {
                payload = mapped
                changed = true
            }
            MySQLPacketEncoder.write(MySQLPacket(sequenceID: packet.sequenceID, payload: payload), into: &output)
        }
        return changed ? output : nil
    }

    /// A text row (`columns` fields) with the fields that `map` gives a new value replaced; nil when none is,
    /// or the row is not `columns` whole fields. `map` sees every field but NULL, in order, with its column.
    static func mapFields(
        _ row: ByteBuffer, columns: Int, _ map: (_ column: Int, _ field: ByteBuffer) -> String?
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
            if let value = map(column, field) {
                mapped.writeLengthEncodedString(value)
                changed = true
            } else {
                mapped.writeLengthEncodedInteger(length)
                mapped.writeImmutableBuffer(field)
            }
        }
        guard rest.readableBytes == 0 else { return nil }
        return changed ? mapped : nil
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
}
