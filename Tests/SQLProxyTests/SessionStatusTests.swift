import MySQLWire
import NIOCore
import Testing

@testable import SQLProxy

@Suite("SHOW STATUS's Compression row")
struct SessionStatusTests {
    @Test(
        "one SHOW [SESSION | LOCAL] STATUS statement is recognised; GLOBAL, other statements and several are not",
        arguments: [
            ("SHOW STATUS", true), ("show session status like 'Compression';", true),
            ("  Show /* x */ LOCAL Status WHERE Variable_name = 'Compression'\n", true),
            ("SHOW GLOBAL STATUS LIKE 'Compression'", false), ("SHOW STATUS; SELECT 1", false),
            ("SELECT 'SHOW STATUS'", false), ("SHOW SLAVE STATUS", false), ("SHOW SESSION VARIABLES", false),
            ("SHOW SESSION", false), ("SELECT * FROM information_schema.SESSION_STATUS", false),
        ])
    func recognised(sql: String, expected: Bool) {
        #expect(SessionStatus.listsStatus(ProcessListIDsTests.query(sql)) == expected)
    }

    /// A `SHOW STATUS` answer as MariaDB sends it: Variable_name, Value; EOFs unless `deprecateEOF`.
    static func answer(_ rows: [(String, String)], deprecateEOF: Bool) -> ByteBuffer {
        ProcessListIDsTests.resultSet(
            columns: ["Variable_name", "Value"].map {
                ProcessListIDsTests.column($0, origin: ("information_schema", "SESSION_STATUS", "", ""))
            }, rows: rows.map { [$0.0, $0.1] }, deprecateEOF: deprecateEOF)
    }

    @Test("a compressed client hop sees Compression ON; every other row is the server's", arguments: [false, true])
    func rewritten(deprecateEOF: Bool) throws {
        let rows = [("Bytes_sent", "1234"), ("Compression", "OFF"), ("Ssl_cipher", "TLS_AES_128_GCM_SHA256")]
        let original = Self.answer(rows, deprecateEOF: deprecateEOF)
        let shown = try #require(
            SessionStatus.rewrite(original, deprecateEOF: deprecateEOF, clientHopCompressed: true))
        var expected = rows
        expected[1].1 = "ON"
        #expect(shown == Self.answer(expected, deprecateEOF: deprecateEOF))
    }

    @Test("anything else passes unchanged: no Compression row, other columns, an ERR, a partial answer")
    func unchanged() {
        let noRow = Self.answer([("Bytes_sent", "1234")], deprecateEOF: false)
        #expect(SessionStatus.rewrite(noRow, deprecateEOF: false, clientHopCompressed: true) == nil)
        let processList = ProcessListIDsTests.answer(ids: ["1"], deprecateEOF: false)
        #expect(SessionStatus.rewrite(processList, deprecateEOF: false, clientHopCompressed: true) == nil)
        let answer = Self.answer([("Compression", "OFF")], deprecateEOF: false)
        let partial = answer.getSlice(at: 0, length: answer.readableBytes - 3)!
        #expect(SessionStatus.rewrite(partial, deprecateEOF: false, clientHopCompressed: true) == nil)
        var error = ByteBuffer()
        var payload = ByteBuffer()
        Packets.ErrorPacket(errorCode: 1064, sqlState: "42000", message: "syntax").encode(
            into: &payload, capabilities: [.protocol41])
        ProcessListIDsTests.packet(1, payload, into: &error)
        #expect(SessionStatus.rewrite(error, deprecateEOF: false, clientHopCompressed: true) == nil)
    }
}
