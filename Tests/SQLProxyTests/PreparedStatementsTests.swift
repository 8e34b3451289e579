import MySQLWire
import NIOCore
import Testing

@testable import SQLProxy

@Suite("Prepared statements across a move")
struct PreparedStatementsTests {
    static func prepare(_ sql: String) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(Command.statementPrepare.rawValue)
        buffer.writeString(sql)
        return buffer
    }

    /// COM_STMT_EXECUTE with `params` parameters (all INT, values 1, 2, ...), types sent when `bound`.
    static func execute(_ id: UInt32, params: Int, bound: Bool, flags: UInt8 = 0) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(Command.statementExecute.rawValue)
        buffer.writeInteger(id, endianness: .little)
        buffer.writeInteger(flags)
        buffer.writeInteger(UInt32(1), endianness: .little)
        guard params > 0 else { return buffer }
        buffer.writeRepeatingByte(0, count: (params + 7) / 8)
        buffer.writeInteger(UInt8(bound ? 1 : 0))
        if bound {
            for _ in 0..<params { buffer.writeBytes([3, 0]) }  // MYSQL_TYPE_LONG, signed
        }
        for value in 0..<params { buffer.writeInteger(Int32(value + 1), endianness: .little) }
        return buffer
    }

    static func command(_ command: Command, _ id: UInt32) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(command.rawValue)
        buffer.writeInteger(id, endianness: .little)
        return buffer
    }

    static func id(_ packet: ByteBuffer?) -> UInt32? {
        packet?.getInteger(at: packet!.readerIndex + 1, endianness: .little, as: UInt32.self)
    }

    static func ok(_ id: UInt32, params: UInt16 = 2, columns: UInt16 = 1) -> ResponseTracker.PreparedStatementOK {
        .init(statementID: id, columns: columns, params: params)
    }

    @Test("Before any move the server's ids are the client's, and nothing is rewritten")
    func noMove() {
        var statements = PreparedStatements()
        statements.prepareSent(Self.prepare("SELECT ?, ?"))
        #expect(statements.prepareAnswered(Self.ok(7)) == nil)
        #expect(statements.clientCommand(.statementExecute, payload: Self.execute(7, params: 2, bound: true)) == nil)
        #expect(statements.clientCommand(.statementExecute, payload: Self.execute(7, params: 2, bound: false)) == nil)
        #expect(statements.clientCommand(.statementExecute, payload: Self.execute(99, params: 0, bound: false)) == nil)
        #expect(statements.obstacle == nil)
        #expect(statements.statements.keys.sorted() == [7])
        #expect(statements.clientCommand(.statementClose, payload: Self.command(.statementClose, 7)) == nil)
        #expect(statements.statements.isEmpty)
        // An ERR to a prepare keeps nothing.
        statements.prepareSent(Self.prepare("SELEC"))
        #expect(statements.prepareAnswered(nil) == nil)
        #expect(statements.statements.isEmpty)
    }

    @Test("After a move ids are mapped, and the first execute there gets the parameter types again")
    func afterMove() throws {
        var statements = PreparedStatements()
        for (sql, id) in [("SELECT ?, ?", UInt32(7)), ("SELECT ? + ?", 9)] {
            statements.prepareSent(Self.prepare(sql))
            _ = statements.prepareAnswered(Self.ok(id))
        }
        _ = statements.clientCommand(.statementExecute, payload: Self.execute(7, params: 2, bound: true))
        #expect(statements.replayOrder == [7, 9])
        #expect(statements.statements[7]?.prepare == Self.prepare("SELECT ?, ?"))

        // The new connection hands out 1 and 2.
        #expect(statements.preparedAgain(7, Self.ok(1)) == nil)
        #expect(statements.preparedAgain(9, Self.ok(2)) == nil)
        #expect(statements.remapped)

        // Statement 7 was executed with types before the move: they are sent again once.
        let firstExecute = statements.clientCommand(
            .statementExecute, payload: Self.execute(7, params: 2, bound: false))
        let first = try #require(firstExecute)
        var expected = Self.execute(1, params: 2, bound: true)
        #expect(first == expected)
        let second = statements.clientCommand(.statementExecute, payload: Self.execute(7, params: 2, bound: false))
        expected = Self.execute(1, params: 2, bound: false)
        #expect(second == expected)
        // Statement 9 never had types: its packet only gets the new id.
        #expect(Self.id(statements.clientCommand(.statementReset, payload: Self.command(.statementReset, 9))) == 2)
        // An id the client was never given goes nowhere rather than to another statement.
        let unknown = statements.clientCommand(.statementExecute, payload: Self.execute(1, params: 0, bound: false))
        #expect(Self.id(unknown) == PreparedStatements.unknownID)

        // A statement prepared now gets the server's id unless the client already has it.
        statements.prepareSent(Self.prepare("SELECT 1"))
        #expect(statements.prepareAnswered(Self.ok(3, params: 0)) == nil)
        statements.prepareSent(Self.prepare("SELECT 2"))
        let answered = statements.prepareAnswered(Self.ok(7, params: 0))
        let fresh = try #require(answered)
        #expect(fresh != 7 && statements.statements[fresh]?.serverID == 7)
        #expect(
            Self.id(statements.clientCommand(.statementExecute, payload: Self.execute(fresh, params: 0, bound: false)))
                == 7)

        #expect(Self.id(statements.clientCommand(.statementClose, payload: Self.command(.statementClose, 7))) == 1)
        #expect(statements.statements[7] == nil)

        // Once the session cannot move again (a cursor), statements prepared later are still mapped.
        _ = statements.clientCommand(.statementExecute, payload: Self.execute(9, params: 2, bound: true, flags: 1))
        #expect(statements.obstacle == "a cursor")
        statements.prepareSent(Self.prepare("SELECT 3"))
        #expect(statements.prepareAnswered(Self.ok(50, params: 0)) == nil)
        let later = statements.clientCommand(.statementExecute, payload: Self.execute(50, params: 0, bound: false))
        #expect(later == nil, "the server's own id goes through unchanged")
    }

    @Test("A statement whose shape changed on the new connection stops the move")
    func shapeChanged() {
        var statements = PreparedStatements()
        statements.prepareSent(Self.prepare("SELECT * FROM t WHERE id = ?"))
        _ = statements.prepareAnswered(Self.ok(4, params: 1, columns: 3))
        #expect(
            statements.preparedAgain(4, Self.ok(1, params: 1, columns: 4))
                == "a prepared statement has 1 parameters and 4 columns on the new connection, not 1 and 3")
    }

    @Test("Long data, cursors, bulk execute and too many statements make the session unmovable")
    func obstacles() {
        var statements = PreparedStatements()
        statements.prepareSent(Self.prepare("INSERT INTO t VALUES (?)"))
        _ = statements.prepareAnswered(Self.ok(1, params: 1, columns: 0))
        var longData = Self.command(.statementSendLongData, 1)
        longData.writeBytes([0, 0, 1, 2, 3])
        _ = statements.clientCommand(.statementSendLongData, payload: longData)
        #expect(statements.obstacle == "long data sent for a prepared statement")
        _ = statements.clientCommand(.statementExecute, payload: Self.execute(1, params: 1, bound: true))
        #expect(statements.obstacle == nil)
        _ = statements.clientCommand(.statementSendLongData, payload: longData)
        _ = statements.clientCommand(.statementReset, payload: Self.command(.statementReset, 1))
        #expect(statements.obstacle == nil)

        _ = statements.clientCommand(.statementExecute, payload: Self.execute(1, params: 1, bound: false, flags: 1))
        #expect(statements.obstacle == "a cursor")
        statements.reset()
        #expect(statements.obstacle == nil && statements.statements.isEmpty)

        _ = statements.clientCommand(.statementBulkExecute, payload: Self.command(.statementBulkExecute, 1))
        #expect(statements.obstacle == "COM_STMT_BULK_EXECUTE")
        statements.reset()

        for id in 1...UInt32(PreparedStatements.maximumStatements + 1) {
            statements.prepareSent(Self.prepare("SELECT \(id)"))
            _ = statements.prepareAnswered(Self.ok(id, params: 0))
        }
        #expect(statements.statements.count == PreparedStatements.maximumStatements)
        #expect(statements.obstacle?.hasPrefix("more than 1024 prepared statements") == true)
    }
}
