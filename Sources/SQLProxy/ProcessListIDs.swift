import MySQLWire
import NIOCore

/// Thread lists through the proxy show each proxy session under the id its client knows (the greeting's,
/// `CONNECTION_ID()`'s, the one `KILL` takes), not its server thread's: a client finds its own row, and an id
/// read there and given to `KILL` names the session that was shown. Threads that are no proxy session's
/// (replication, other clients of the server) keep the server's ids.
///
/// Two kinds of query list threads: `SHOW [FULL] PROCESSLIST` (its first column, `Id`) and any single
/// statement that reads `information_schema.PROCESSLIST` (each result column the server says is that table's
/// `ID`, whatever the query does with it). In the latter, `CONNECTION_ID()` is left to the server
/// (`SQLRewriter`), so `WHERE ID = CONNECTION_ID()` finds the session's own row, which then shows the proxy's id.
enum ProcessListIDs {
    /// Whether a COM_QUERY payload (command byte first) lists threads: one `SHOW [FULL] PROCESSLIST`, or one
    /// statement that names a `PROCESSLIST` table.
    static func listsThreads(_ payload: ByteBuffer) -> Bool {
        // (`SHOW [FULL] PROCESSLIST` names it too.)
        guard let (tokens, text) = SQLRewriter.singleStatement(payload, mentioning: "processlist") else { return false }
        return namesProcessListTable(tokens, text)
    }

    /// Whether the tokens name a table `PROCESSLIST` (bare or quoted, in any schema: the server decides which).
    static func namesProcessListTable(_ tokens: [SQLLexer.Token], _ text: [UInt8]) -> Bool {
        tokens.contains { token in
            switch token.kind {
            case .word:
                return SQLLexer.equalsIgnoringCase(text[token.range], "processlist")
            case .quoted where text[token.range.lowerBound] == UInt8(ascii: "`"):
                return SQLLexer.equalsIgnoringCase(text[token.range].dropFirst().dropLast(), "processlist")
            default:
                return false
            }
        }
    }

    /// The whole answer to a thread list (packets with headers) with each id that `proxyID` maps replaced, in
    /// the columns that hold thread ids; nil when nothing changes or the answer is not a text result set (an
    /// ERR, an OK, bytes that are not whole packets), which then passes unchanged.
    static func rewrite(_ answer: ByteBuffer, deprecateEOF: Bool, proxyID: (UInt64) -> UInt32?) -> ByteBuffer? {
        TextResultSet.mapRows(answer, deprecateEOF: deprecateEOF) { definitions -> (columns: Int, ids: Set<Int>)? in
            var ids = Set(definitions.indices.filter { definitions[$0]?.isProcessListID == true })
            // SHOW PROCESSLIST's columns come from no table: its first is named `Id`.
            if ids.isEmpty, definitions.first??.name.lowercased() == "id", definitions.first??.table == "" {
                ids = [0]
            }
            return ids.isEmpty ? nil : (definitions.count, ids)
        } mapRow: { plan, row in
            TextResultSet.mapFields(row, columns: plan.columns) { column, field in
                guard plan.ids.contains(column), field.readableBytes <= 20,
                    let text = field.getString(at: field.readerIndex, length: field.readableBytes),
                    let thread = UInt64(text), let id = proxyID(thread)
                else { return nil }
                return String(id)
            }
        }
    }
}
