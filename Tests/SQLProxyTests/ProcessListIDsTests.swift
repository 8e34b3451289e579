import MySQLWire
import NIOCore
import Testing

@testable import SQLProxy

@Suite("Thread list ids")
struct ProcessListIDsTests {
    static func query(_ sql: String) -> ByteBuffer {
        var payload = ByteBuffer(bytes: [Command.query.rawValue])
        payload.writeString(sql)
        return payload
    }

    @Test(
        "SHOW [FULL] PROCESSLIST and a statement reading a PROCESSLIST table are recognised, alone only",
        arguments: [
            ("SHOW PROCESSLIST", true), ("show full processlist;", true), ("  Show /* x */ ProcessList\n", true),
            ("SHOW PROCESSLIST; SELECT 1", false), ("SELECT 'SHOW PROCESSLIST'", false), ("SHOW FULL", false),
            ("SELECT * FROM information_schema.processlist", true),
            ("SELECT ID FROM information_schema.`PROCESSLIST` p WHERE p.ID = CONNECTION_ID()", true),
            ("SELECT 1; SELECT * FROM information_schema.PROCESSLIST", false), ("SELECT 1 AS processlists", false),
            ("SELECT 'processlist'", false), ("SELECT /* processlist */ 1", false),
        ])
    func recognised(sql: String, expected: Bool) {
        #expect(ProcessListIDs.listsThreads(Self.query(sql)) == expected)
    }

    static func packet(_ sequenceID: UInt8, _ payload: ByteBuffer, into out: inout ByteBuffer) {
        MySQLPacketEncoder.write(MySQLPacket(sequenceID: sequenceID, payload: payload), into: &out)
    }

    /// A column definition; `origin` is (schema, table, original table, original name).
    static func column(_ name: String, origin: (String, String, String, String) = ("", "", "", "")) -> ByteBuffer {
        var definition = ByteBuffer()
        for text in ["def", origin.0, origin.1, origin.2, name, origin.3] { definition.writeLengthEncodedString(text) }
        definition.writeBytes([0x0C, 0x21, 0x00, 0x14, 0x00, 0x00, 0x00, 0x08, 0x81, 0x00, 0x00, 0x00, 0x00])
        return definition
    }

    static func row(_ fields: [String?]) -> ByteBuffer {
        var row = ByteBuffer()
        for field in fields {
            if let field { row.writeLengthEncodedString(field) } else { row.writeInteger(UInt8(0xFB)) }
        }
        return row
    }

    /// A text result set as MariaDB sends it (packets numbered from 1): the column count, `columns`, an EOF
    /// unless `deprecateEOF`, `rows`, and the closing EOF (an OK with the 0xFE header with `deprecateEOF`).
    static func resultSet(columns: [ByteBuffer], rows: [[String?]], deprecateEOF: Bool) -> ByteBuffer {
        var count = ByteBuffer()
        count.writeLengthEncodedInteger(UInt64(columns.count))
        var payloads = [count] + columns
        if !deprecateEOF { payloads.append(ByteBuffer(bytes: [0xFE, 0, 0, 0x02, 0])) }
        payloads += rows.map(row)
        payloads.append(ByteBuffer(bytes: deprecateEOF ? [0xFE, 0, 0, 0x02, 0, 0, 0] : [0xFE, 0, 0, 0x02, 0]))
        var out = ByteBuffer()
        for (index, payload) in payloads.enumerated() { packet(UInt8(index + 1), payload, into: &out) }
        return out
    }

    /// An answer as MariaDB sends it: Id, User, Info; three rows; EOFs unless `deprecateEOF`.
    static func answer(firstColumn: String = "Id", ids: [String], deprecateEOF: Bool) -> ByteBuffer {
        resultSet(
            columns: [firstColumn, "User", "Info"].map { column($0) },
            rows: ids.enumerated().map { index, id in [id, "app", index == 0 ? "SHOW PROCESSLIST" : nil] },
            deprecateEOF: deprecateEOF)
    }

    @Test(
        "each proxy session's server thread id becomes its proxy id; other threads keep the server's",
        arguments: [false, true])
    func rewritten(deprecateEOF: Bool) throws {
        let original = Self.answer(ids: ["1234", "5", "77"], deprecateEOF: deprecateEOF)
        let proxyIDs: [UInt64: UInt32] = [1234: 3, 77: 100_000]
        let mapped = try #require(ProcessListIDs.rewrite(original, deprecateEOF: deprecateEOF) { proxyIDs[$0] })
        #expect(mapped == Self.answer(ids: ["3", "5", "100000"], deprecateEOF: deprecateEOF))
    }

    @Test("anything else passes unchanged: no mapped id, another first column, an ERR, a partial answer")
    func unchanged() {
        let answer = Self.answer(ids: ["1234"], deprecateEOF: false)
        #expect(ProcessListIDs.rewrite(answer, deprecateEOF: false) { _ in nil } == nil)
        let other = Self.answer(firstColumn: "User_id", ids: ["1234"], deprecateEOF: false)
        #expect(ProcessListIDs.rewrite(other, deprecateEOF: false) { _ in 1 } == nil)
        var error = ByteBuffer()
        var payload = ByteBuffer()
        Packets.ErrorPacket(errorCode: 1227, sqlState: "42000", message: "denied").encode(
            into: &payload, capabilities: [.protocol41])
        Self.packet(1, payload, into: &error)
        #expect(ProcessListIDs.rewrite(error, deprecateEOF: false) { _ in 1 } == nil)
        #expect(
            ProcessListIDs.rewrite(answer.getSlice(at: 0, length: answer.readableBytes - 3)!, deprecateEOF: false) {
                _ in 1
            } == nil)
        #expect(ProcessListIDs.rewrite(ByteBuffer(), deprecateEOF: false) { _ in 1 } == nil)
    }

    @Test("in a query on information_schema.PROCESSLIST, every column that is its ID is mapped, under any alias")
    func informationSchema() throws {
        func answer(_ rows: [[String?]]) -> ByteBuffer {
            Self.resultSet(
                columns: [
                    Self.column("USER", origin: ("information_schema", "p", "PROCESSLIST", "USER")),
                    Self.column("thread", origin: ("information_schema", "p", "PROCESSLIST", "ID")),
                    Self.column("Id", origin: ("appdb", "t", "t", "id")),  // another table's id column
                ], rows: rows, deprecateEOF: false)
        }
        let original = answer([[nil, "1234", "1234"], ["app", "77", nil], ["system user", "5", "5"]])
        let proxyIDs: [UInt64: UInt32] = [1234: 3, 77: 100_000]
        let mapped = try #require(ProcessListIDs.rewrite(original, deprecateEOF: false) { proxyIDs[$0] })
        #expect(mapped == answer([[nil, "3", "1234"], ["app", "100000", nil], ["system user", "5", "5"]]))
    }
}
