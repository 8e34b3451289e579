import MySQLWire
import NIOCore
import Testing

@testable import SQLProxy

@Suite struct SessionPortabilityTests {
    private func query(_ sql: String) -> ByteBuffer {
        var payload = ByteBuffer()
        payload.writeInteger(Command.query.rawValue)
        payload.writeString(sql)
        return payload
    }

    private func classify(_ sql: String) -> String? {
        if case .pins(let reason) = StatementClassifier.classify(query(sql)) { return reason }
        return nil
    }

    private let autocommit: StatusFlags = [.autocommit]

    @Test("Statements that leave no session state behind keep a session portable")
    func statelessStatements() {
        for sql in [
            "SELECT c FROM sbtest1 WHERE id=5", "  select 1", "(SELECT 1) UNION (SELECT 2)",
            "/* comment */ SELECT 1", "-- note\nSELECT 1", "# note\nSELECT 1", "SELECT 'SET @a := 1', `into`",
            "SELECT \"GET_LOCK('x', 1)\"", "SHOW TABLES", "DESCRIBE t", "EXPLAIN SELECT 1",
            "UPDATE t SET c = c + 1 WHERE id = 3", "DELETE FROM t WHERE id = 3", "BEGIN", "START TRANSACTION",
            "COMMIT", "ROLLBACK", "SELECT 1;", "SELECT 1 ;  ", "WITH x AS (SELECT 1) SELECT * FROM x",
            "SELECT @@port, @@session.sql_mode", "SELECT @a = 1",
        ] {
            #expect(classify(sql) == nil, "\(sql)")
        }
    }

    @Test("A COMMIT or ROLLBACK as the last command is noted (the server may close the connection after it)")
    func endedTransactionLast() {
        var portability = SessionPortability()
        for (sql, expected) in [
            ("COMMIT RELEASE", true), ("/* c */ rollback work and no chain release", true), ("COMMIT", true),
            ("SELECT 1", false), ("(ROLLBACK)", true), ("'commit'", false), ("SET completion_type = 2", false),
        ] {
            portability.commandSent(.query, payload: query(sql))
            #expect(portability.endedTransactionLast == expected, "\(sql)")
        }
        portability.commandSent(.query, payload: query("COMMIT"))
        portability.commandSent(.ping, payload: ByteBuffer(bytes: [Command.ping.rawValue]))
        #expect(!portability.endedTransactionLast, "any later command clears it")
    }

    @Test("Statements that may leave session state behind pin the session, with a reason")
    func statefulStatements() {
        for sql in [
            "SET @a = NOW()", "SET GLOBAL max_connections = 5", "USE appdb; SELECT 1", "PREPARE s FROM 'SELECT 1'",
            "CREATE TEMPORARY TABLE t (a INT)", "LOCK TABLES t READ", "SELECT GET_LOCK('x', 0)",
            "SELECT @b := 5", "SELECT c INTO @v FROM t LIMIT 1", "INSERT INTO t SELECT 1 INTO @v",
            "INSERT INTO t VALUES (LAST_INSERT_ID(5))", "INSERT INTO t VALUES (NEXTVAL(s))",
            "REPLACE INTO t SELECT @a := 1", "INSERT INTO t VALUES (1); SELECT 1", "SELECT LAST_INSERT_ID(7)",
            "UPDATE t SET id = LAST_INSERT_ID(id + 1)",
            "SELECT NEXTVAL(s)", "SELECT NEXT VALUE FOR s", "SELECT 1; SET @a = 1", "SELECT 1; SELECT 2",
            "/*!40101 SET NAMES utf8 */", "SELECT 1 /*!, @a := 2 */", "CALL p()", "DO GET_LOCK('x', 0)",
            "XA START 'x'", String(repeating: "SELECT 1 ", count: 10_000),
        ] {
            #expect(classify(sql) != nil, "\(sql.prefix(60))")
        }
        #expect(classify("SET GLOBAL max_connections = 5") == "a SET statement")
        #expect(classify("SELECT GET_LOCK('x', 0)") == "get_lock in a statement")
    }

    @Test("INSERT and REPLACE leave only LAST_INSERT_ID(): a move loses it, and reading it is then refused")
    func inserts() {
        for sql in [
            "INSERT INTO t VALUES (1)", "insert low_priority ignore into t (a) values (1), (2)",
            "REPLACE INTO t SET a = 1", "INSERT t VALUES (1)", "INSERT INTO t SELECT * FROM u",
            "INSERT INTO t VALUES (1) ON DUPLICATE KEY UPDATE a = a + 1",
        ] {
            #expect(StatementClassifier.classify(query(sql)) == .insert, "\(sql)")
        }
        for sql in [
            "SELECT LAST_INSERT_ID()", "select @@last_insert_id", "SELECT @@identity", "SELECT @@session.identity",
        ] {
            #expect(StatementClassifier.readsLastInsertID(query(sql)), "\(sql)")
        }
        for sql in [
            "SELECT identity FROM t", "SELECT 'LAST_INSERT_ID()'", "SELECT `last_insert_id` FROM t", "SELECT 1",
        ] {
            #expect(!StatementClassifier.readsLastInsertID(query(sql)), "\(sql)")
        }

        var session = SessionPortability()
        session.moved()
        #expect(!session.lastInsertIDLost, "nothing was inserted")
        session.commandSent(.query, payload: query("INSERT INTO t VALUES (1)"))
        session.responseFinished(status: autocommit)
        #expect(session.obstacle == nil && session.inserted)
        session.moved()
        #expect(session.lastInsertIDLost)
        var reset = ByteBuffer()
        reset.writeInteger(Command.resetConnection.rawValue)
        session.commandSent(.resetConnection, payload: reset)
        session.responseFinished(status: autocommit)
        #expect(!session.lastInsertIDLost && !session.inserted)
    }

    @Test("After a move lost LAST_INSERT_ID(), a query or prepare that reads it is refused until a reset")
    func lastInsertIDRefusal() {
        func packet(_ command: Command, _ text: String) -> ByteBuffer {
            var payload = ByteBuffer()
            payload.writeInteger(command.rawValue)
            payload.writeString(text)
            return payload
        }
        let reads = query("SELECT LAST_INSERT_ID()")
        let lost = Packets.ErrorPacket(
            errorCode: 1927, sqlState: "70100",
            message: "Connection was killed: this session moved to a new server connection after an INSERT, "
                + "and LAST_INSERT_ID() did not move with it; reconnect")

        var session = SessionPortability()
        session.moved()
        #expect(session.refusal(.query, payload: reads) == nil, "nothing was inserted before the move")
        session.commandSent(.query, payload: query("INSERT INTO t VALUES (1)"))
        session.responseFinished(status: autocommit)
        #expect(session.refusal(.query, payload: reads) == nil, "the session has not moved")

        session.moved()
        #expect(session.refusal(.query, payload: reads) == lost)
        #expect(session.refusal(.statementPrepare, payload: packet(.statementPrepare, "SELECT @@identity")) == lost)
        #expect(session.refusal(.query, payload: query("SELECT 1")) == nil, "does not read it")
        #expect(session.refusal(.query, payload: query("INSERT INTO t VALUES (2)")) == nil, "does not read it")
        #expect(session.refusal(.initDB, payload: packet(.initDB, "last_insert_id")) == nil, "not a statement")

        session.commandSent(.resetConnection, payload: packet(.resetConnection, ""))
        session.responseFinished(status: autocommit)
        #expect(session.refusal(.query, payload: reads) == nil, "a reset clears it")
    }

    @Test("A statement prepared by protocol counts as run: state it may leave pins, an INSERT loses LAST_INSERT_ID()")
    func preparedStatements() {
        func prepare(_ sql: String) -> ByteBuffer {
            var payload = ByteBuffer()
            payload.writeInteger(Command.statementPrepare.rawValue)
            payload.writeString(sql)
            return payload
        }
        for sql in [
            "SET @v = ?", "SET SESSION sql_mode = ?", "CREATE TEMPORARY TABLE t (a INT)", "SELECT GET_LOCK(?, 0)",
            "LOCK TABLES t WRITE", "SELECT c INTO @v FROM t WHERE id = ?", "SELECT NEXTVAL(s)", "USE appdb",
        ] {
            var session = SessionPortability()
            session.commandSent(.statementPrepare, payload: prepare(sql))
            session.responseFinished(status: autocommit)
            #expect(session.obstacle != nil, "\(sql)")
        }
        var pinned = SessionPortability()
        pinned.commandSent(.statementPrepare, payload: prepare("SELECT GET_LOCK(?, 0)"))
        #expect(pinned.obstacle == "get_lock in a statement (prepared)")

        var session = SessionPortability()
        for sql in [
            "SELECT c FROM sbtest1 WHERE id = ?", "UPDATE t SET c = ? WHERE id = ?", "DELETE FROM t WHERE id = ?",
        ] {
            session.commandSent(.statementPrepare, payload: prepare(sql))
            session.responseFinished(status: autocommit)
        }
        #expect(session.obstacle == nil && !session.inserted)
        session.commandSent(.statementPrepare, payload: prepare("INSERT INTO t (c) VALUES (?)"))
        session.responseFinished(status: autocommit)
        #expect(session.obstacle == nil && session.inserted, "an INSERT alone does not pin")
        session.moved()
        #expect(session.refusal(.query, payload: query("SELECT LAST_INSERT_ID()")) != nil)
    }

    @Test("A pin lasts until COM_RESET_CONNECTION is answered OK or the user changes")
    func pinsAndResets() {
        var session = SessionPortability()
        session.commandSent(.query, payload: query("SELECT 1"))
        session.responseFinished(status: autocommit)
        #expect(session.obstacle == nil)

        session.commandSent(.query, payload: query("SET @a = NOW()"))
        session.responseFinished(status: autocommit)
        #expect(session.obstacle == "a SET statement")
        session.commandSent(.query, payload: query("SELECT GET_LOCK('x', 0)"))
        session.responseFinished(status: autocommit)
        #expect(session.obstacle == "a SET statement", "the first reason stays")

        var reset = ByteBuffer()
        reset.writeInteger(Command.resetConnection.rawValue)
        session.commandSent(.resetConnection, payload: reset)
        session.responseFinished(status: nil)  // an ERR resets nothing
        #expect(session.obstacle != nil)
        session.commandSent(.resetConnection, payload: reset)
        session.responseFinished(status: autocommit)
        #expect(session.obstacle == nil)

        session.commandSent(.query, payload: query("CREATE TEMPORARY TABLE t (a INT)"))
        #expect(session.obstacle != nil)
        session.changedUser()
        #expect(session.obstacle == nil)

        // Prepared statements by protocol are prepared again on a move (see PreparedStatementsTests).
        var prepare = ByteBuffer()
        prepare.writeInteger(Command.statementPrepare.rawValue)
        prepare.writeString("SELECT ?")
        session.commandSent(.statementPrepare, payload: prepare)
        session.responseFinished(status: nil)
        #expect(session.obstacle == nil)
    }

    @Test("A transaction or autocommit off holds the session only while the status flags say so")
    func transactions() {
        var session = SessionPortability()
        session.commandSent(.query, payload: query("BEGIN"))
        session.responseFinished(status: [.autocommit, .inTransaction])
        #expect(session.obstacle == "a transaction is open (or autocommit is off)")
        session.commandSent(.query, payload: query("SELECT 1"))
        session.responseFinished(status: nil)  // an ERR keeps what was known
        #expect(session.obstacle != nil)
        session.commandSent(.query, payload: query("COMMIT"))
        session.responseFinished(status: autocommit)
        #expect(session.obstacle == nil)
        session.commandSent(.query, payload: query("SELECT 1"))
        session.responseFinished(status: [])  // autocommit off (e.g. set by an init command)
        #expect(session.obstacle != nil)
    }

    @Test("COM_INIT_DB is replayed as the database; in order with pipelined commands; not after an ERR")
    func initDB() {
        var session = SessionPortability()
        func initDB(_ name: String) -> ByteBuffer {
            var payload = ByteBuffer()
            payload.writeInteger(Command.initDB.rawValue)
            payload.writeString(name)
            return payload
        }
        session.commandSent(.initDB, payload: initDB("first"))
        session.commandSent(.query, payload: query("SELECT 1"))
        session.commandSent(.initDB, payload: initDB("missing"))
        session.responseFinished(status: autocommit)
        #expect(session.database == "first")
        session.responseFinished(status: autocommit)
        session.responseFinished(status: nil)
        #expect(session.database == "first")
        #expect(session.obstacle == nil)
        var ping = ByteBuffer()
        ping.writeInteger(Command.ping.rawValue)
        session.commandSent(.ping, payload: ping)
        session.responseFinished(status: autocommit)
        #expect(session.obstacle == nil)
    }

    @Test("SET statements of literal values, and USE, are replayed rather than pinning the session")
    func replayableStatements() {
        for sql in [
            "SET NAMES latin1", "set names 'utf8mb4' collate 'utf8mb4_bin'", "SET @a = 1", "SET @a = -5;",
            "SET sql_mode = ''", "SET SESSION wait_timeout = 100, @@session.net_read_timeout = 60",
            "SET @@sql_mode = 'ANSI_QUOTES'", "SET LOCAL time_zone = '+00:00'", "SET CHARACTER SET utf8",
            "SET CHARSET utf8", "SET autocommit = 0", "SET `sql_mode` = DEFAULT",
        ] {
            #expect(StatementClassifier.classify(query(sql)) == .setting, "\(sql)")
        }
        for sql in [
            "SET GLOBAL max_connections = 5", "SET @@global.max_connections = 5", "SET @a = @b", "SET @a = NOW()",
            "SET @a = 1 + 1", "SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
            "SET STATEMENT max_statement_time = 1 FOR SELECT 1", "SET PASSWORD = PASSWORD('x')", "SET ROLE r",
            "SET DEFAULT ROLE r", "SET @a = 1; SELECT 1", "SET NAMES", "SET", "/*!40101 SET NAMES utf8 */",
            "SET @a = (SELECT 1)",
        ] {
            #expect(StatementClassifier.classify(query(sql)) != .setting, "\(sql)")
            #expect(classify(sql) != nil, "\(sql)")
        }
        #expect(StatementClassifier.classify(query("USE appdb")) == .useDatabase("appdb"))
        #expect(StatementClassifier.classify(query("use `we``ird`;")) == .useDatabase("we`ird"))
        #expect(classify("USE appdb; SELECT 1") != nil)
    }

    @Test("Accepted SET statements are kept in order for a replay; a reset clears them; too many pin")
    func settingsKept() {
        var session = SessionPortability()
        session.commandSent(.query, payload: query("SET NAMES latin1"))
        session.commandSent(.query, payload: query("SET @a = 1"))
        session.commandSent(.query, payload: query("USE other"))
        session.commandSent(.query, payload: query("SET @b = 2"))
        session.responseFinished(status: autocommit)
        session.responseFinished(status: nil)  // refused: not replayed
        session.responseFinished(status: autocommit)
        session.responseFinished(status: autocommit)
        #expect(session.obstacle == nil)
        #expect(session.database == "other")
        #expect(session.settings.map { String(buffer: $0).dropFirst() } == ["SET NAMES latin1", "SET @b = 2"])

        var reset = ByteBuffer()
        reset.writeInteger(Command.resetConnection.rawValue)
        session.commandSent(.resetConnection, payload: reset)
        session.responseFinished(status: autocommit)
        #expect(session.settings.isEmpty)

        for n in 0..<SessionPortability.maximumSettings {
            session.commandSent(.query, payload: query("SET @v\(n) = \(n)"))
            session.responseFinished(status: autocommit)
        }
        #expect(session.obstacle == nil)
        session.commandSent(.query, payload: query("SET @one_more = 1"))
        #expect(session.obstacle == "more than \(SessionPortability.maximumSettings) SET statements")
    }
}
