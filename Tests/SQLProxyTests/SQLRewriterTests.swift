import NIOCore
import Testing

@testable import SQLProxy

@Suite struct SQLRewriterTests {
    /// Session 77's `CONNECTION_ID()`, typed as the server types the call.
    private let id = "CAST(0000000077 AS UNSIGNED)"

    private func rewrite(
        _ sql: String, id: UInt32 = 77, kill: (UInt32, Bool) -> UInt32? = { id, _ in id + 1000 }
    ) -> String? {
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
        #expect(rewrite("SELECT CONNECTION_ID()") == "SELECT \(id) AS `CONNECTION_ID()`")
        #expect(
            rewrite("select connection_id ( ), 'CONNECTION_ID()'")
                == "select \(id) AS `connection_id ( )`, 'CONNECTION_ID()'")
        #expect(rewrite("SELECT `connection_id()` FROM t") == "SELECT `connection_id()` FROM t")
        #expect(rewrite("SELECT 1 /* CONNECTION_ID() */") == "SELECT 1 /* CONNECTION_ID() */")
        #expect(rewrite("SELECT 1 -- CONNECTION_ID()\n") == "SELECT 1 -- CONNECTION_ID()\n")
        #expect(rewrite("SELECT db.connection_id()") == "SELECT db.connection_id()")
        #expect(
            rewrite("SELECT 'it''s', CONNECTION_ID(), \"a\\\"b\"")
                == "SELECT 'it''s', \(id) AS `CONNECTION_ID()`, \"a\\\"b\"")
        #expect(rewrite("SELECT /*!50000 CONNECTION_ID() */") == "SELECT /*!50000 \(id) AS `CONNECTION_ID()` */")
        #expect(rewrite("SELECT 1 WHERE 5 = CONNECTION_ID()") == "SELECT 1 WHERE 5 = \(id)")
    }

    @Test("A whole unaliased select-list item keeps its column name with an alias in the client's spelling")
    func connectionIDColumnName() {
        #expect(rewrite("SELECT connection_id()") == "SELECT \(id) AS `connection_id()`")
        #expect(rewrite("SELECT Connection_Id() ;") == "SELECT \(id) AS `Connection_Id()` ;")
        #expect(rewrite("SELECT 1, CONNECTION_ID() , 2") == "SELECT 1, \(id) AS `CONNECTION_ID()` , 2")
        #expect(
            rewrite("SELECT DISTINCT CONNECTION_ID() FROM t") == "SELECT DISTINCT \(id) AS `CONNECTION_ID()` FROM t")
        #expect(rewrite("SELECT CONNECTION_ID() INTO @id") == "SELECT \(id) AS `CONNECTION_ID()` INTO @id")
        #expect(
            rewrite("SELECT * FROM (SELECT CONNECTION_ID()) AS t")
                == "SELECT * FROM (SELECT \(id) AS `CONNECTION_ID()`) AS t"
        )
        #expect(
            rewrite("SELECT CONNECTION_ID() UNION SELECT 1") == "SELECT \(id) AS `CONNECTION_ID()` UNION SELECT 1")
    }

    @Test("An aliased item keeps its alias: the call becomes the bare number")
    func connectionIDAliased() {
        #expect(rewrite("SELECT CONNECTION_ID() AS id") == "SELECT \(id) AS id")
        #expect(rewrite("SELECT CONNECTION_ID() id") == "SELECT \(id) id")
        #expect(rewrite("SELECT CONNECTION_ID() `id`, 1") == "SELECT \(id) `id`, 1")
        #expect(rewrite("SELECT CONNECTION_ID() 'id'") == "SELECT \(id) 'id'")
        #expect(rewrite("SELECT CONNECTION_ID() as `CONNECTION_ID()`") == "SELECT \(id) as `CONNECTION_ID()`")
    }

    @Test("Outside a select list, and in an aliased item, the call is replaced without an alias")
    func connectionIDElsewhere() {
        #expect(rewrite("SELECT 1 FROM t WHERE id = CONNECTION_ID()") == "SELECT 1 FROM t WHERE id = \(id)")
        #expect(rewrite("SELECT a FROM t WHERE b IN (1, CONNECTION_ID())") == "SELECT a FROM t WHERE b IN (1, \(id))")
        #expect(rewrite("SELECT a FROM t WHERE CONNECTION_ID() = b") == "SELECT a FROM t WHERE \(id) = b")
        #expect(rewrite("SELECT CONNECTION_ID()+0") == "SELECT \(id)+0 AS `CONNECTION_ID()+0`")
        #expect(rewrite("SELECT CONNECTION_ID() = 77") == "SELECT \(id) = 77 AS `CONNECTION_ID() = 77`")
        #expect(rewrite("SELECT -CONNECTION_ID()") == "SELECT -\(id) AS `-CONNECTION_ID()`")
        #expect(
            rewrite("SELECT CONCAT('a', CONNECTION_ID())")
                == "SELECT CONCAT('a', \(id)) AS `CONCAT('a', CONNECTION_ID())`"
        )
        #expect(rewrite("SELECT IF(1, CONNECTION_ID(), 0)") == "SELECT IF(1, \(id), 0) AS `IF(1, CONNECTION_ID(), 0)`")
        #expect(
            rewrite("SELECT CASE WHEN 1 THEN CONNECTION_ID() END")
                == "SELECT CASE WHEN 1 THEN \(id) END AS `CASE WHEN 1 THEN CONNECTION_ID() END`")
        #expect(rewrite("SELECT CONNECTION_ID() IS NULL, 1") == "SELECT \(id) IS NULL AS `CONNECTION_ID() IS NULL`, 1")
        #expect(rewrite("SELECT CONNECTION_ID() + 1 AS n") == "SELECT \(id) + 1 AS n")
        #expect(rewrite("SELECT CONNECTION_ID() + 1 n FROM t") == "SELECT \(id) + 1 n FROM t")
        #expect(
            rewrite("SELECT (SELECT CONNECTION_ID()) + 1")
                == "SELECT (SELECT \(id) AS `CONNECTION_ID()`) + 1 AS `(SELECT CONNECTION_ID()) + 1`")
        #expect(
            rewrite("SELECT `a``b` + CONNECTION_ID()") == "SELECT `a``b` + \(id) AS ```a````b`` + CONNECTION_ID()`")
        #expect(rewrite("SET @id = CONNECTION_ID()") == "SET @id = \(id)")
        #expect(rewrite("INSERT INTO t VALUES (CONNECTION_ID(), 1)") == "INSERT INTO t VALUES (\(id), 1)")
        #expect(rewrite("DO CONNECTION_ID()") == "DO \(id)")
        #expect(
            rewrite("SELECT a, CONNECTION_ID() FROM t ORDER BY CONNECTION_ID()")
                == "SELECT a, \(id) AS `CONNECTION_ID()` FROM t ORDER BY \(id)")
    }

    @Test("Each statement of a multi-statement query is judged on its own")
    func connectionIDMultipleStatements() {
        #expect(
            rewrite("SELECT CONNECTION_ID(); SELECT 1 FROM t WHERE a = connection_id(); select 2, connection_id()")
                == "SELECT \(id) AS `CONNECTION_ID()`; SELECT 1 FROM t WHERE a = \(id); select 2, \(id) AS `connection_id()`"
        )
        #expect(rewrite("SELECT 1 FROM t; CONNECTION_ID()") == "SELECT 1 FROM t; \(id)")
    }

    @Test("CONNECTION_ID() is replaced by an expression of its type, whatever the id's size")
    func connectionIDType() {
        #expect(String(decoding: SQLRewriter.typedConnectionID(5), as: UTF8.self) == "CAST(0000000005 AS UNSIGNED)")
        #expect(
            String(decoding: SQLRewriter.typedConnectionID(.max), as: UTF8.self) == "CAST(4294967295 AS UNSIGNED)")
    }

    @Test("In a statement that reads a PROCESSLIST table, the call is the server's: its rows show server ids")
    func connectionIDInThreadLists() {
        for sql in [
            "SELECT ID FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()",
            "SELECT STATE FROM information_schema.`processlist` p WHERE p.id = connection_id()",
        ] {
            #expect(rewrite(sql) == sql)
        }
        #expect(
            rewrite("SELECT CONNECTION_ID(); SELECT 1 FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()")
                == "SELECT \(id) AS `CONNECTION_ID()`; SELECT 1 FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()"
        )
    }

    @Test("From the first CREATE or ALTER on, nothing is rewritten: stored definitions keep CONNECTION_ID() and KILL")
    func definitionsKeepTheirText() {
        for sql in [
            "CREATE VIEW v AS SELECT CONNECTION_ID() AS c",
            "CREATE DEFINER=CURRENT_USER PROCEDURE p() BEGIN SELECT 1; SELECT CONNECTION_ID(); KILL QUERY 5; END",
            "create function f() returns bigint return connection_id()",
            "CREATE TRIGGER t BEFORE INSERT ON t2 FOR EACH ROW SET NEW.who = CONNECTION_ID()",
            "CREATE TABLE t (a BIGINT DEFAULT CONNECTION_ID())",
            "ALTER TABLE t ALTER a SET DEFAULT CONNECTION_ID()",
            "CREATE OR REPLACE EVENT e ON SCHEDULE EVERY 1 DAY DO KILL 5",
            "ALTER EVENT e DO SELECT CONNECTION_ID()",
            "/* comment */ CREATE VIEW v AS SELECT CONNECTION_ID()",
        ] {
            #expect(rewrite(sql) == sql)
        }
        // Statements before it are rewritten.
        #expect(
            rewrite("SELECT CONNECTION_ID(); CREATE VIEW v AS SELECT CONNECTION_ID() AS c")
                == "SELECT \(id) AS `CONNECTION_ID()`; CREATE VIEW v AS SELECT CONNECTION_ID() AS c")
        #expect(rewrite("KILL 5; CREATE PROCEDURE p() KILL 6") == "KILL 1005; CREATE PROCEDURE p() KILL 6")
        // A word that merely contains CREATE, or CREATE later in a statement, changes nothing.
        #expect(rewrite("SELECT CONNECTION_ID() AS created") == "SELECT \(id) AS created")
        #expect(rewrite("INSERT INTO t VALUES ('CREATE', CONNECTION_ID())") == "INSERT INTO t VALUES ('CREATE', \(id))")
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
        #expect(rewrite("KILL 5", kill: { _, _ in nil }) == nil)
    }

    @Test("KILL and KILL CONNECTION end the connection, KILL QUERY only the statement")
    func killKinds() {
        var seen: [(UInt32, Bool)] = []
        _ = rewrite("KILL 5; KILL QUERY 6; KILL CONNECTION 7; KILL HARD QUERY 8; KILL SOFT 9") { id, connection in
            seen.append((id, connection))
            return id
        }
        #expect(seen.map(\.0) == [5, 6, 7, 8, 9])
        #expect(seen.map(\.1) == [true, false, true, false, true], "whether the KILL ends the connection")
    }

    @Test("A KILL in any statement of a multi-statement query is mapped; the first unknown id refuses the query")
    func killInMultiStatements() {
        #expect(rewrite("SELECT 1; KILL 7") == "SELECT 1; KILL 1007")
        #expect(rewrite("DO 1;KILL QUERY 5; kill 6;") == "DO 1;KILL QUERY 1005; kill 1006;")
        #expect(rewrite("SELECT 1; /* c */ KILL HARD 8") == "SELECT 1; /* c */ KILL HARD 1008")
        #expect(rewrite("SELECT 1; SELECT 'x; KILL 5'") == "SELECT 1; SELECT 'x; KILL 5'")
        #expect(rewrite("SELECT 1; KILL CONNECTION_ID()") == "SELECT 1; KILL 1077")
        #expect(rewrite("SELECT 1, KILL 5") == "SELECT 1, KILL 5", "not a statement of its own")
        var asked: [UInt32] = []
        let refused = rewrite("KILL 1; KILL 2; KILL 3") { id, _ in
            asked.append(id)
            return id == 2 ? nil : id + 1000
        }
        #expect(refused == nil)
        #expect(asked == [1, 2], "stops at the first unknown id (answered by the caller)")
    }

    @Test("Keywords match in any case, and only as whole words")
    func keywordCase() {
        #expect(rewrite("Kill Soft Query 5") == "Kill Soft Query 1005")
        #expect(rewrite("KILL QUERYX 5") == "KILL QUERYX 5")
        #expect(rewrite("kill query Id 5") == "kill query Id 5")
        #expect(
            rewrite("sElEcT DiStInCt CONNECTION_ID() FrOm t") == "sElEcT DiStInCt \(id) AS `CONNECTION_ID()` FrOm t")
        #expect(rewrite("SELECT CONNECTION_ID() As id") == "SELECT \(id) As id")
        #expect(rewrite("SELECT CONNECTION_ID() iS NuLl") == "SELECT \(id) iS NuLl AS `CONNECTION_ID() iS NuLl`")
        #expect(rewrite("SELECT CONNECTION_IDS()") == "SELECT CONNECTION_IDS()")
    }

    @Test("Statements without either word are not copied")
    func untouched() {
        var payload = ByteBuffer()
        payload.writeInteger(UInt8(0x03))
        payload.writeString("SELECT c FROM sbtest1 WHERE id=5")
        guard case .unchanged = SQLRewriter.rewrite(payload, connectionID: 1, killTarget: { id, _ in id }) else {
            Issue.record("rewritten")
            return
        }
    }
}
