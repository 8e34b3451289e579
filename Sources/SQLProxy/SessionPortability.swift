package import MySQLWire
package import NIOCore

/// Whether a session can continue on another server connection (a new primary, or a new connection after
/// the old one was lost) without the client being able to tell: nothing on the old connection that a fresh
/// login as the same user, with the same database and character set, would not recreate.
///
/// Conservative by design. A statement pins the session unless it is known to leave no session state
/// behind: `SET`, `USE` by SQL, `PREPARE`, temporary tables, locks, user-variable assignments,
/// `LAST_INSERT_ID(expr)`, `COM_SET_OPTION` and anything unrecognised all pin it. `INSERT` and `REPLACE` do
/// not: the only state they leave is `LAST_INSERT_ID()`, and after a move a statement that reads it ends
/// the session (`lastInsertIDLost`) rather than getting another value. Prepared statements by protocol are
/// prepared again on the new connection (`PreparedStatements`); their text is judged like a query's when
/// it is prepared, as if it had run then. An open transaction or autocommit off
/// (from the server's status flags, not guessed from SQL) holds the session only while it lasts.
/// `COM_RESET_CONNECTION` and a successful `COM_CHANGE_USER` make it portable again. Some state is
/// replayed instead: `COM_INIT_DB` and `USE name` as the login's database, and `SET` statements that give
/// session or user variables (or `NAMES`, `CHARACTER SET`) literal values, run again in order on the new
/// connection.
package struct SessionPortability: Sendable, Hashable {
    package init() {}

    /// Why the session cannot move, from the first statement that left state behind.
    private(set) var pinnedBy: String?
    /// The last response's status flags said a transaction is open or autocommit is off.
    private(set) var inTransaction = false
    /// The database the session uses when `COM_INIT_DB` changed it; nil: the login's.
    private(set) var database: String?
    /// `SET` statements (COM_QUERY payloads) the server accepted, in order: run again after a move.
    private(set) var settings: [ByteBuffer] = []
    /// An `INSERT` or `REPLACE` ran: `LAST_INSERT_ID()` may hold a value a new connection would not have.
    private(set) var inserted = false
    /// The session moved after an insert: its `LAST_INSERT_ID()` is gone, so a statement that reads it must
    /// not run (it would get another value); cleared by `COM_RESET_CONNECTION` or a change of user.
    private(set) var lastInsertIDLost = false
    /// The last command sent was a `COMMIT` or `ROLLBACK`. With `RELEASE` (or `completion_type` 2) the server
    /// closes the connection right after its OK: a connection lost then was ended on purpose, not lost.
    private(set) var endedTransactionLast = false
    /// Commands sent and not yet answered whose answer matters here, oldest first.
    private var awaiting: [Awaited] = []

    /// More `SET` statements than this pin the session instead (a client that sets a variable per request).
    static let maximumSettings = 32

    private enum Awaited: Sendable, Hashable {
        case initDB(String)
        case setting(ByteBuffer)
        case reset
        case other
    }

    /// Why the session cannot move right now, or nil when it can.
    package var obstacle: String? {
        if let pinnedBy { return pinnedBy }
        return inTransaction ? "a transaction is open (or autocommit is off)" : nil
    }

    /// A command is sent to the server. `payload` is the whole command packet (command byte first).
    package mutating func commandSent(_ command: Command, payload: ByteBuffer) {
        endedTransactionLast = false
        switch command {
        case .initDB:
            var name = payload
            name.moveReaderIndex(forwardBy: 1)
            awaiting.append(.initDB(name.readString(length: name.readableBytes) ?? ""))
            return
        case .resetConnection:
            awaiting.append(.reset)
            return
        case .query, .statementPrepare:
            // A statement prepared by protocol is prepared again on a move. What running it leaves behind is
            // taken as soon as it is prepared (which execute runs which statement is not followed).
            guard pinnedBy == nil else { break }
            let prepared = command == .statementPrepare
            switch StatementClassifier.classify(payload) {
            case .stateless:
                break
            case .endsTransaction:
                // (Only a session that could move needs to know: any other one ends with its connection.)
                endedTransactionLast = !prepared
            case .insert:
                inserted = true
            case .useDatabase where prepared, .setting where prepared:
                pinnedBy = "a prepared USE or SET statement (its values come with each execute)"
            case .useDatabase(let name):
                awaiting.append(.initDB(name))
                return
            case .setting:
                guard settings.count < Self.maximumSettings else {
                    pinnedBy = "more than \(Self.maximumSettings) SET statements"
                    break
                }
                // A copy, not a slice of the read buffer.
                awaiting.append(.setting(ByteBufferAllocator().buffer(buffer: payload)))
                return
            case .pins(let reason):
                pinnedBy = prepared ? reason + " (prepared)" : reason
            }
        case .ping, .statistics, .processInfo, .processKill, .fieldList, .debug, .sleep, .time, .quit:
            break
        case .statementExecute, .statementSendLongData, .statementClose, .statementReset, .statementFetch,
            .statementBulkExecute:
            break  // what cannot follow the session is `PreparedStatements.obstacle`
        default:
            if pinnedBy == nil { pinnedBy = "command \(command)" }
        }
        if ResponseTracker.expectsResponse(command) { awaiting.append(.other) }
    }

    /// The server finished answering the oldest command that expects an answer; `status` is nil after an ERR.
    package mutating func responseFinished(status: StatusFlags?) {
        let awaited = awaiting.isEmpty ? .other : awaiting.removeFirst()
        guard let status else { return }
        inTransaction = status.contains(.inTransaction) || !status.contains(.autocommit)
        switch awaited {
        case .initDB(let name): database = name
        case .setting(let statement): settings.append(statement)
        case .reset:
            pinnedBy = nil
            settings = []
            inserted = false
            lastInsertIDLost = false
        case .other: break
        }
    }

    /// The answer to a command that must not run, or nil. After a move that lost `LAST_INSERT_ID()`
    /// (`lastInsertIDLost`), a `COM_QUERY` or `COM_STMT_PREPARE` that may read it is refused, and the session
    /// must end: on the new connection it would get another value. `payload` is the whole command packet as
    /// the client sent it (command byte first).
    package func refusal(_ command: Command, payload: ByteBuffer) -> Packets.ErrorPacket? {
        switch command {
        case .query, .statementPrepare:
            guard lastInsertIDLost, StatementClassifier.readsLastInsertID(payload) else { return nil }
            return Packets.ErrorPacket(
                errorCode: 1927, sqlState: "70100",
                message: "Connection was killed: this session moved to a new server connection after an INSERT, "
                    + "and LAST_INSERT_ID() did not move with it; reconnect")
        default:
            return nil
        }
    }

    /// The session now runs on a new server connection.
    package mutating func moved() {
        if inserted { lastInsertIDLost = true }
    }

    /// Something outside the statements pinned the session (kept until a reset or change of user).
    mutating func pin(_ reason: String) {
        if pinnedBy == nil { pinnedBy = reason }
    }

    /// The session now belongs to another user (a successful `COM_CHANGE_USER`): a fresh session whose
    /// database is the login's.
    mutating func changedUser() {
        self = SessionPortability()
    }
}

/// Reads just enough of a `COM_QUERY` to tell whether the statement may leave session state behind, and
/// whether that state can be recreated by running it again.
package enum StatementClassifier {
    package enum Verdict: Hashable {
        /// Leaves no session state behind.
        case stateless
        /// `USE name`: the database is replayed as the login's.
        case useDatabase(String)
        /// A `SET` of literal values that running it again recreates.
        case setting
        /// `INSERT` or `REPLACE`: no state but the session's `LAST_INSERT_ID()`, which a move loses.
        case insert
        /// `COMMIT` or `ROLLBACK`: no state, but with `RELEASE` (or `completion_type` 2) the server closes the
        /// connection after its OK.
        case endsTransaction
        /// May leave state behind that a new connection would not have.
        case pins(String)
    }

    /// Statements longer than this are not scanned: they pin the session.
    static let maximumLength = 64 * 1024

    /// `payload` is the COM_QUERY packet: the command byte, then the statement.
    package static func classify(_ payload: ByteBuffer) -> Verdict {
        guard payload.readableBytes <= maximumLength + 1 else { return .pins("a statement too long to classify") }
        return payload.withUnsafeReadableBytes { raw in
            classify(UnsafeRawBufferPointer(rebasing: raw.dropFirst()))
        }
    }

    /// First words that leave no session state by themselves (what follows is still checked).
    private static let statelessLeaders: [StaticString] = [
        "select", "show", "describe", "desc", "explain", "values", "table", "with", "update", "delete",
        "begin", "start", "commit", "rollback", "help", "insert", "replace",
    ]

    /// Words that, anywhere in a statement, may leave state behind (a variable, a lock, a sequence value,
    /// the last insert id).
    private static let statefulWords: [StaticString] = [
        "into", "get_lock", "last_insert_id", "nextval", "lastval", "setval", "next", "previous",
    ]

    static func classify(_ text: UnsafeRawBufferPointer) -> Verdict {
        var lexer = SQLLexer(text: text)
        var first: SQLLexer.Token?
        var leadingSymbols = 0
        while let token = lexer.next() {
            if token.kind != .symbol {
                first = token
                break
            }
            leadingSymbols += 1
        }
        guard let first else { return lexer.sawExecutableComment ? .pins("an executable comment") : .stateless }
        let leader = UnsafeRawBufferPointer(rebasing: text[first.range])
        if leadingSymbols == 0, first.kind == .word,
            SQLLexer.equalsIgnoringCase(leader, "set") || SQLLexer.equalsIgnoringCase(leader, "use")
        {
            // Short statements that may be replayed: read them whole.
            var tokens = [first]
            while tokens.count <= 64, let token = lexer.next() { tokens.append(token) }
            if tokens.count <= 64, !lexer.sawExecutableComment {
                if SQLLexer.equalsIgnoringCase(leader, "set") {
                    if isLiteralSetting(tokens, text) { return .setting }
                } else if let name = useDatabase(tokens, text) {
                    return .useDatabase(name)
                }
            }
        }
        guard first.kind == .word, statelessLeaders.contains(where: { SQLLexer.equalsIgnoringCase(leader, $0) })
        else {
            return .pins("a \(String(decoding: leader.prefix(24), as: UTF8.self).uppercased()) statement")
        }
        let inserts = SQLLexer.equalsIgnoringCase(leader, "insert") || SQLLexer.equalsIgnoringCase(leader, "replace")
        /// `INSERT [modifiers] INTO t`: that INTO names the table (a later one would assign a variable).
        var tableInto = inserts
        var previous = first
        var afterSemicolon = false
        while let token = lexer.next() {
            if afterSemicolon { return .pins("several statements in one query") }
            switch token.kind {
            case .word:
                let word = UnsafeRawBufferPointer(rebasing: text[token.range])
                if tableInto, SQLLexer.equalsIgnoringCase(word, "into") {
                    tableInto = false
                    break
                }
                if let match = statefulWords.first(where: { SQLLexer.equalsIgnoringCase(word, $0) }) {
                    return .pins("\(match) in a statement")
                }
            case .symbol:
                switch text[token.range.lowerBound] {
                case UInt8(ascii: ";"):
                    afterSemicolon = true
                case UInt8(ascii: "=")
                where previous.kind == .symbol && text[previous.range.lowerBound] == UInt8(ascii: ":")
                    && previous.range.upperBound == token.range.lowerBound:
                    return .pins("a variable assignment (:=)")
                default:
                    break
                }
            case .number, .quoted:
                break
            }
            previous = token
        }
        if lexer.sawExecutableComment { return .pins("an executable comment") }
        if inserts { return .insert }
        let ends = SQLLexer.equalsIgnoringCase(leader, "commit") || SQLLexer.equalsIgnoringCase(leader, "rollback")
        return ends ? .endsTransaction : .stateless
    }

    /// Whether a statement may read the session's last insert id: `LAST_INSERT_ID()`, `@@last_insert_id` or
    /// `@@identity` (`payload` is the COM_QUERY or COM_STMT_PREPARE packet). Long statements count as reading.
    package static func readsLastInsertID(_ payload: ByteBuffer) -> Bool {
        guard payload.readableBytes <= maximumLength + 1 else { return true }
        return payload.withUnsafeReadableBytes { raw in
            let text = UnsafeRawBufferPointer(rebasing: raw.dropFirst())
            var lexer = SQLLexer(text: text)
            var previous: SQLLexer.Token?
            while let token = lexer.next() {
                defer { previous = token }
                guard token.kind == .word else { continue }
                let word = UnsafeRawBufferPointer(rebasing: text[token.range])
                if SQLLexer.equalsIgnoringCase(word, "last_insert_id") { return true }
                // `identity` is also an ordinary name; as a variable it follows `@@` or `@@session.`.
                if SQLLexer.equalsIgnoringCase(word, "identity"), let previous, previous.kind == .symbol,
                    text[previous.range.lowerBound] == UInt8(ascii: "@")
                        || text[previous.range.lowerBound] == UInt8(ascii: ".")
                {
                    return true
                }
            }
            return false
        }
    }

    /// The database of `USE name` (a plain or backquoted name, optionally followed by `;`).
    static func useDatabase(_ tokens: [SQLLexer.Token], _ text: UnsafeRawBufferPointer) -> String? {
        guard tokens.count == 2 || (tokens.count == 3 && text[tokens[2].range.lowerBound] == UInt8(ascii: ";"))
        else { return nil }
        let name = UnsafeRawBufferPointer(rebasing: text[tokens[1].range])
        switch tokens[1].kind {
        case .word:
            return String(decoding: name, as: UTF8.self)
        case .quoted where name.first == UInt8(ascii: "`") && name.count >= 2 && name.last == UInt8(ascii: "`"):
            var bytes: [UInt8] = []
            var index = 1
            while index < name.count - 1 {
                bytes.append(name[index])
                index += name[index] == UInt8(ascii: "`") ? 2 : 1
            }
            return String(decoding: bytes, as: UTF8.self)
        default:
            return nil
        }
    }

    /// `SET a = literal, @b = literal, NAMES x [COLLATE y], CHARACTER SET x` for the session (no `GLOBAL`,
    /// no `TRANSACTION`, no `STATEMENT ... FOR`, no expressions), optionally ended by `;`.
    static func isLiteralSetting(_ tokens: [SQLLexer.Token], _ text: UnsafeRawBufferPointer) -> Bool {
        var index = 1
        func isSymbol(_ character: Unicode.Scalar) -> Bool {
            index < tokens.count && tokens[index].kind == .symbol
                && text[tokens[index].range.lowerBound] == UInt8(ascii: character)
        }
        func isWord(_ expected: StaticString) -> Bool {
            index < tokens.count && tokens[index].kind == .word
                && SQLLexer.equalsIgnoringCase(UnsafeRawBufferPointer(rebasing: text[tokens[index].range]), expected)
        }
        func isValue() -> Bool {
            guard index < tokens.count else { return false }
            if isSymbol("-") || isSymbol("+") { index += 1 }
            guard index < tokens.count, tokens[index].kind != .symbol else { return false }
            index += 1
            return true
        }
        while true {
            if isWord("names") {
                index += 1
                guard isValue() else { return false }
                if isWord("collate") {
                    index += 1
                    guard isValue() else { return false }
                }
            } else if isWord("charset") {
                index += 1
                guard isValue() else { return false }
            } else if isWord("character") {
                index += 1
                guard isWord("set") else { return false }
                index += 1
                guard isValue() else { return false }
            } else {
                // [SESSION | LOCAL | @@ | @@session. | @@local. | @] name = value
                if isWord("global") || isWord("transaction") || isWord("statement") || isWord("password")
                    || isWord("role") || isWord("default")
                {
                    return false
                }
                if isWord("session") || isWord("local") { index += 1 }
                if isSymbol("@") {
                    index += 1
                    if isSymbol("@") {
                        index += 1
                        if isWord("global") { return false }
                        if (isWord("session") || isWord("local")) && index + 1 < tokens.count {
                            index += 1
                            guard isSymbol(".") else { return false }
                            index += 1
                        }
                    }
                }
                guard index < tokens.count, tokens[index].kind == .word || tokens[index].kind == .quoted else {
                    return false
                }
                index += 1
                guard isSymbol("=") else { return false }
                index += 1
                guard isValue() else { return false }
            }
            if index == tokens.count { return true }
            if isSymbol(";") { return index + 1 == tokens.count }
            guard isSymbol(",") else { return false }
            index += 1
        }
    }
}
