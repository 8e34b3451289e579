import MySQLWire
import NIOCore

/// `SHOW [SESSION] STATUS` through the proxy is the server connection's status: `Ssl_cipher` and the like
/// describe the server hop (PROXY-SPEC). `Compression` is the exception. The proxy never compresses the
/// server hop, so a client that asked for the compressed protocol would read `OFF` there and conclude that it
/// is not in use. For a compressed client hop the proxy shows `ON` in that row, as a server would to that
/// client. (Other ways of reading it, `information_schema.SESSION_STATUS` and the like, show the server hop's.)
enum SessionStatus {
    /// Whether a COM_QUERY payload (command byte first) is one `SHOW [SESSION | LOCAL] STATUS` statement (with
    /// or without `LIKE` or `WHERE`; not `GLOBAL`, which has no `Compression` row).
    static func listsStatus(_ payload: ByteBuffer) -> Bool {
        guard let (tokens, text) = SQLRewriter.singleStatement(payload, mentioning: "status") else { return false }
        var words = tokens.prefix(3).lazy.filter { $0.kind == .word }.map { text[$0.range] }.makeIterator()
        guard let show = words.next(), SQLLexer.equalsIgnoringCase(show, "show"), var word = words.next() else {
            return false
        }
        if SQLLexer.equalsIgnoringCase(word, "session") || SQLLexer.equalsIgnoringCase(word, "local") {
            guard let next = words.next() else { return false }
            word = next
        }
        return SQLLexer.equalsIgnoringCase(word, "status")
    }

    /// The whole answer to `SHOW STATUS` (packets with headers) with the `Compression` row's value set to the
    /// client hop's; nil when there is no such row or the answer is not a status list.
    static func rewrite(_ answer: ByteBuffer, deprecateEOF: Bool, clientHopCompressed: Bool) -> ByteBuffer? {
        let value = clientHopCompressed ? "ON" : "OFF"
        return TextResultSet.mapRows(answer, deprecateEOF: deprecateEOF) { definitions in
            definitions.count == 2 && definitions[0]?.name.lowercased() == "variable_name" ? () : nil
        } mapRow: { _, row in
            var isCompression = false
            return TextResultSet.mapFields(row, columns: 2) { column, field in
                if column == 0 {
                    isCompression = field.withUnsafeReadableBytes {
                        SQLLexer.equalsIgnoringCase($0, "compression")
                    }
                    return nil
                }
                return isCompression ? value : nil
            }
        }
    }
}
