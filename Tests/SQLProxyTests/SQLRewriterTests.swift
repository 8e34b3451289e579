import NIOCore
import Testing

@testable import SQLProxy

@Suite struct SQLRewriterTests {
    private func rewrite(_ sql: String, id: UInt32 = 77, kill: (UInt32) -> UInt32? = { $0 + 1000 }) -> String? {
        var payload = ByteBuffer()
        payload.writeInteger(UInt8(0x03))
        payload.writeString(sql)
        switch SQLRewriter.rewrite(payload, connectionID: id, killTarget: kill) {
        case .unchanged: return sql
        case .rewritten(var out):
            #expect(out.readInteger(as: UInt8.self) == 0x03)
            return out.readString(length: out.readableBytes)
        case .refused: return nil
        }
    }

    @Test("CONNECTION_ID() becomes the proxy's id; strings, comments and qualified names are left alone")
    func connectionID() {
        #expect(rewrite("SELECT CONNECTION_ID()") == "SELECT 77")
        #expect(rewrite("select connection_id ( ), 'CONNECTION_ID()'") == "select 77, 'CONNECTION_ID()'")
        #expect(rewrite("SELECT `connection_id()` FROM t") == "SELECT `connection_id()` FROM t")
        #expect(rewrite("SELECT 1 /* CONNECTION_ID() */") == "SELECT 1 /* CONNECTION_ID() */")
        #expect(rewrite("SELECT 1 -- CONNECTION_ID()\n") == "SELECT 1 -- CONNECTION_ID()\n")
        #expect(rewrite("SELECT db.connection_id()") == "SELECT db.connection_id()")
        #expect(rewrite("SELECT 'it''s', CONNECTION_ID(), \"a\\\"b\"") == "SELECT 'it''s', 77, \"a\\\"b\"")
        #expect(rewrite("SELECT /*!50000 CONNECTION_ID() */") == "SELECT /*!50000 77 */")
    }

    @Test("KILL [HARD|SOFT] [CONNECTION|QUERY] n is mapped to the backend thread; KILL QUERY ID and KILL USER are not")
    func kill() {
        #expect(rewrite("KILL 5") == "KILL 1005")
        #expect(rewrite("  kill query 5;") == "  kill query 1005;")
        #expect(rewrite("KILL HARD CONNECTION 12") == "KILL HARD CONNECTION 1012")
        #expect(rewrite("KILL QUERY ID 5") == "KILL QUERY ID 5")
        #expect(rewrite("KILL USER app") == "KILL USER app")
        #expect(rewrite("KILL QUERY CONNECTION_ID()") == "KILL QUERY 1077")
        #expect(rewrite("SELECT 'KILL 5'") == "SELECT 'KILL 5'")
        #expect(rewrite("KILL 5", kill: { _ in nil }) == nil)
    }

    @Test("Statements without either word are not copied")
    func untouched() {
        var payload = ByteBuffer()
        payload.writeInteger(UInt8(0x03))
        payload.writeString("SELECT c FROM sbtest1 WHERE id=5")
        guard case .unchanged = SQLRewriter.rewrite(payload, connectionID: 1, killTarget: { $0 }) else {
            Issue.record("rewritten")
            return
        }
    }
}
