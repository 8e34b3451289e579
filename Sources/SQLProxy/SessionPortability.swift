import MySQLWire
import NIOCore

/// Whether a session can continue on another server connection (a new primary, or a new connection after
/// the old one was lost) without the client being able to tell: nothing on the old connection that a fresh
/// login as the same user, with the same database and character set, would not recreate.
///
/// Conservative by design. A statement pins the session unless it is known to leave no session state
/// behind: `SET`, `USE` by SQL, `PREPARE`, temporary tables, locks, user-variable assignments, `INSERT`
/// (`LAST_INSERT_ID()`), prepared statements by protocol, `COM_SET_OPTION` and anything unrecognised all
/// pin it. An open transaction or autocommit off (from the server's status flags, not guessed from SQL)
/// holds it only while it lasts. `COM_RESET_CONNECTION` and a successful `COM_CHANGE_USER` make it portable
/// again; `COM_INIT_DB` is replayed as the login's database.
struct SessionPortability: Sendable, Hashable {
    /// Why the session cannot move, from the first statement that left state behind.
    private(set) var pinnedBy: String?
    /// The last response's status flags said a transaction is open or autocommit is off.
    private(set) var inTransaction = false
    /// The database the session uses when `COM_INIT_DB` changed it; nil: the login's.
    private(set) var database: String?
    /// Commands sent and not yet answered whose answer matters here, oldest first.
    private var awaiting: [Awaited] = []

    private enum Awaited: Sendable, Hashable {
        case initDB(String)
        case reset
        case other
    }

    /// Why the session cannot move right now, or nil when it can.
    var obstacle: String? {
        if let pinnedBy { return pinnedBy }
        return inTransaction ? "a transaction is open (or autocommit is off)" : nil
    }

    /// A command is sent to the server. `payload` is the whole command packet (command byte first).
    mutating func commandSent(_ command: Command, payload: ByteBuffer) {
        switch command {
        case .initDB:
            var name = payload
            name.moveReaderIndex(forwardBy: 1)
            awaiting.append(.initDB(name.readString(length: name.readableBytes) ?? ""))
            return
        case .resetConnection:
            awaiting.append(.reset)
            return
        case .query:
            if pinnedBy == nil, let reason = StatementClassifier.sessionStateChange(payload) { pinnedBy = reason }
        case .ping, .statistics, .processInfo, .processKill, .fieldList, .debug, .sleep, .time, .quit:
            break
        case .statementPrepare, .statementExecute, .statementSendLongData, .statementClose, .statementReset,
            .statementFetch, .statementBulkExecute:
            if pinnedBy == nil { pinnedBy = "prepared statements" }
        default:
            if pinnedBy == nil { pinnedBy = "command \(command)" }
        }
        if ResponseTracker.expectsResponse(command) { awaiting.append(.other) }
    }

    /// The server finished answering the oldest command that expects an answer; `status` is nil after an ERR.
    mutating func responseFinished(status: StatusFlags?) {
        let awaited = awaiting.isEmpty ? .other : awaiting.removeFirst()
        guard let status else { return }
        inTransaction = status.contains(.inTransaction) || !status.contains(.autocommit)
        switch awaited {
        case .initDB(let name): database = name
        case .reset: pinnedBy = nil
        case .other: break
        }
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

/// Reads just enough of a `COM_QUERY` to tell whether the statement may leave session state behind.
enum StatementClassifier {
    /// Statements longer than this are not scanned: they pin the session.
    static let maximumLength = 64 * 1024

    /// Nil when the statement certainly leaves no session state; otherwise a short reason.
    /// `payload` is the COM_QUERY packet: the command byte, then the statement.
    static func sessionStateChange(_ payload: ByteBuffer) -> String? {
        guard payload.readableBytes <= maximumLength + 1 else { return "a statement too long to classify" }
        return payload.withUnsafeReadableBytes { raw in
            classify(UnsafeRawBufferPointer(rebasing: raw.dropFirst()))
        }
    }

    /// First words that leave no session state by themselves (what follows is still checked).
    private static let statelessLeaders: [StaticString] = [
        "select", "show", "describe", "desc", "explain", "values", "table", "with", "update", "delete",
        "begin", "start", "commit", "rollback", "help",
    ]

    /// Words that, anywhere in a statement, may leave state behind (a variable, a lock, a sequence value,
    /// the last insert id).
    private static let statefulWords: [StaticString] = [
        "into", "get_lock", "last_insert_id", "nextval", "lastval", "setval", "next", "previous",
    ]

    static func classify(_ text: UnsafeRawBufferPointer) -> String? {
        var lexer = SQLLexer(text: text)
        var first: SQLLexer.Token?
        while let token = lexer.next() {
            if token.kind == .word || token.kind == .number || token.kind == .quoted {
                first = token
                break
            }
        }
        guard let first else { return lexer.sawExecutableComment ? "an executable comment" : nil }
        let leader = UnsafeRawBufferPointer(rebasing: text[first.range])
        guard first.kind == .word, statelessLeaders.contains(where: { SQLLexer.equalsIgnoringCase(leader, $0) })
        else {
            return "a \(String(decoding: leader.prefix(24), as: UTF8.self).uppercased()) statement"
        }
        var previous = first
        var afterSemicolon = false
        while let token = lexer.next() {
            if afterSemicolon { return "several statements in one query" }
            switch token.kind {
            case .word:
                let word = UnsafeRawBufferPointer(rebasing: text[token.range])
                if let match = statefulWords.first(where: { SQLLexer.equalsIgnoringCase(word, $0) }) {
                    return "\(match) in a statement"
                }
            case .symbol:
                switch text[token.range.lowerBound] {
                case UInt8(ascii: ";"):
                    afterSemicolon = true
                case UInt8(ascii: "=")
                where previous.kind == .symbol && text[previous.range.lowerBound] == UInt8(ascii: ":")
                    && previous.range.upperBound == token.range.lowerBound:
                    return "a variable assignment (:=)"
                default:
                    break
                }
            case .number, .quoted:
                break
            }
            previous = token
        }
        return lexer.sawExecutableComment ? "an executable comment" : nil
    }
}
