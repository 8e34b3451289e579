import MySQLWire
package import NIOCore

/// The two places where the proxy changes a client's SQL, so that connection ids mean the same through
/// the proxy as on a server: `CONNECTION_ID()` becomes the proxy's id for the session (the one the client
/// saw in the greeting), and the thread id in `KILL [CONNECTION|QUERY] n` becomes the backend thread of
/// proxy session n. Strings, quoted identifiers and comments are skipped; everything else is left
/// byte-for-byte as the client sent it.
///
/// The call becomes `CAST(0000000077 AS UNSIGNED)`, which a server types exactly as `CONNECTION_ID()`
/// (`int(10) unsigned`, not null: the same column definition, and the same column in `CREATE TABLE ... AS
/// SELECT`). Nothing is changed from the first statement that starts with `CREATE` or `ALTER` on: a view,
/// routine, trigger, event or column default keeps `CONNECTION_ID()` (and a routine its `KILL`) as written,
/// to be evaluated where it runs, as it would be stored by a server. (The body of a routine has `;` of
/// its own, so the rest of the query is taken as part of it.)
///
/// A server names an unaliased result column after the item as written, so a select-list item without an
/// alias that contains the call gets its original text as an alias: `SELECT CONNECTION_ID()+0` becomes
/// `SELECT CAST(0000000077 AS UNSIGNED)+0 AS \`CONNECTION_ID()+0\`` (in the client's spelling), and clients
/// that read the column by name still find it. Elsewhere (a WHERE clause, an aliased item) the call is
/// replaced the same way, without an alias.
package enum SQLRewriter {
    package enum Result {
        case unchanged
        case rewritten(ByteBuffer)
        /// The statement must not be sent (the caller already answered the client).
        case refused
    }

    /// Statements longer than this are never rewritten (a KILL or a CONNECTION_ID() lookup is short;
    /// scanning a bulk INSERT of megabytes would only cost time).
    static let maximumLength = 64 * 1024

    /// `payload` is a COM_QUERY or COM_STMT_PREPARE packet: the command byte, then the statement.
    /// `killTarget` maps a proxy session id named by KILL (and whether the KILL ends its connection, not
    /// only its statement) to the server thread, or answers the client and returns nil.
    package static func rewrite(
        _ payload: ByteBuffer, connectionID: UInt32, killTarget: (UInt32, _ connection: Bool) -> UInt32?
    ) -> Result {
        guard payload.readableBytes > 1, payload.readableBytes <= maximumLength + 1,
            payload.withUnsafeReadableBytes({ raw in
                let statement = UnsafeRawBufferPointer(rebasing: raw.dropFirst())
                return containsIgnoringCase(statement, "kill") || containsIgnoringCase(statement, "connection_id")
            }),
            let text = payload.getBytes(at: payload.readerIndex + 1, length: payload.readableBytes - 1)
        else { return .unchanged }
        var replacements: [(Range<Int>, [UInt8])] = []
        let tokens = tokenize(text)
        let definitions = firstDefinition(tokens, text)
        let starts = statementStarts(tokens, text).filter { $0 < definitions }
        // Every statement of a multi-statement query: `SELECT 1; KILL 7` must not kill server thread 7.
        for start in starts {
            guard let (target, connection) = killStatementTarget(tokens, text, from: start) else { continue }
            let id: UInt32?
            switch target {
            case .number(let range): id = UInt32(String(decoding: text[range], as: UTF8.self))
            case .connectionID: id = connectionID
            }
            guard let id else { continue }  // (no such id: the server says so)
            guard let thread = killTarget(id, connection) else { return .refused }
            replacements.append((target.range, Array(String(thread).utf8)))
        }
        var items: [Range<Int>]?
        var namedItems: [Range<Int>] = []
        let threadLists = starts.filter { listsThreads(tokens, text, from: $0) }
        for index in tokens.indices where index < definitions {
            // In a statement that reads the thread list, the call is the server's (see `ProcessListIDs`).
            if let start = starts.last(where: { $0 <= index }), threadLists.contains(start) { continue }
            guard let call = connectionIDCall(at: index, tokens, text),
                !replacements.contains(where: { $0.0.overlaps(call) })
            else { continue }
            replacements.append((call, typedConnectionID(connectionID)))
            let selectItems = items ?? unaliasedSelectItems(tokens, text)
            items = selectItems
            for item in selectItems where item.contains(index) && !namedItems.contains(item) {
                namedItems.append(item)
                let original = tokens[item.lowerBound].range.lowerBound..<tokens[item.upperBound - 1].range.upperBound
                var alias = Array(" AS `".utf8)
                for byte in text[original] {
                    alias.append(byte)
                    if byte == UInt8(ascii: "`") { alias.append(byte) }
                }
                alias.append(UInt8(ascii: "`"))
                replacements.append((original.upperBound..<original.upperBound, alias))
            }
        }
        guard !replacements.isEmpty else { return .unchanged }
        var out = ByteBuffer()
        out.reserveCapacity(payload.readableBytes + 16)
        out.writeInteger(payload.getInteger(at: payload.readerIndex, as: UInt8.self) ?? 0)
        var position = 0
        for (range, bytes) in replacements.sorted(by: { $0.0.lowerBound < $1.0.lowerBound }) {
            out.writeBytes(text[position..<range.lowerBound])
            out.writeBytes(bytes)
            position = range.upperBound
        }
        out.writeBytes(text[position...])
        return .rewritten(out)
    }

    typealias Token = SQLLexer.Token

    enum KillTarget {
        case number(Range<Int>)
        /// `KILL [QUERY] CONNECTION_ID()`: the session itself.
        case connectionID(Range<Int>)

        var range: Range<Int> {
            switch self {
            case .number(let range), .connectionID(let range): range
            }
        }
    }

    /// Whether the statement starting at token `start` names a `PROCESSLIST` table.
    static func listsThreads(_ tokens: [Token], _ text: [UInt8], from start: Int) -> Bool {
        var end = start
        while end < tokens.count,
            !(tokens[end].kind == .symbol && text[tokens[end].range.lowerBound] == UInt8(ascii: ";"))
        {
            end += 1
        }
        return ProcessListIDs.namesProcessListTable(Array(tokens[start..<end]), text)
    }

    /// `CONNECTION_ID()`'s value as an expression of its type: ten digits, cast to unsigned.
    static func typedConnectionID(_ id: UInt32) -> [UInt8] {
        let digits = String(id)
        return Array("CAST(\(String(repeating: "0", count: max(0, 10 - digits.count)))\(digits) AS UNSIGNED)".utf8)
    }

    /// The index of the first token of the first statement that starts with `CREATE` or `ALTER` (it stores a
    /// definition, and the rest of the query may be its body), or the number of tokens.
    static func firstDefinition(_ tokens: [Token], _ text: [UInt8]) -> Int {
        for start in statementStarts(tokens, text) where tokens[start].kind == .word {
            let word = text[tokens[start].range]
            if SQLLexer.equalsIgnoringCase(word, "create") || SQLLexer.equalsIgnoringCase(word, "alter") {
                return start
            }
        }
        return tokens.count
    }

    /// The first token of each statement: the first, and each after a `;`.
    static func statementStarts(_ tokens: [Token], _ text: [UInt8]) -> [Int] {
        var starts = tokens.isEmpty ? [] : [0]
        for (index, token) in tokens.enumerated() where index + 1 < tokens.count && token.kind == .symbol {
            if text[token.range.lowerBound] == UInt8(ascii: ";") { starts.append(index + 1) }
        }
        return starts
    }

    /// The thread id of a `KILL [HARD|SOFT] [CONNECTION|QUERY] n` statement starting at token `start` (not
    /// `KILL QUERY ID n`, which names a query id, and not `KILL USER name`), and whether it ends the
    /// connection (not `QUERY`).
    static func killStatementTarget(
        _ tokens: [Token], _ text: [UInt8], from start: Int = 0
    ) -> (KillTarget, connection: Bool)? {
        var index = start
        func word(_ expected: StaticString) -> Bool {
            guard index < tokens.count, tokens[index].kind == .word,
                SQLLexer.equalsIgnoringCase(text[tokens[index].range], expected)
            else { return false }
            index += 1
            return true
        }
        guard word("kill") else { return nil }
        _ = word("hard") || word("soft")
        let connection = !word("query")
        if !connection {
            if word("id") { return nil }
        } else {
            _ = word("connection")
        }
        guard index < tokens.count else { return nil }
        let target: KillTarget
        if tokens[index].kind == .number {
            target = .number(tokens[index].range)
            index += 1
        } else if let call = connectionIDCall(at: index, tokens, text) {
            target = .connectionID(call)
            index += 3
        } else {
            return nil
        }
        if index < tokens.count,
            !(tokens[index].kind == .symbol && text[tokens[index].range.lowerBound] == UInt8(ascii: ";"))
        {
            return nil
        }
        return (target, connection)
    }

    /// The bytes of `CONNECTION_ID()` (the built-in, not `schema.connection_id()`) starting at token `index`.
    static func connectionIDCall(at index: Int, _ tokens: [Token], _ text: [UInt8]) -> Range<Int>? {
        func symbol(_ offset: Int, _ character: Unicode.Scalar) -> Bool {
            let position = index + offset
            guard position >= 0, position < tokens.count, tokens[position].kind == .symbol else { return false }
            return text[tokens[position].range.lowerBound] == UInt8(ascii: character)
        }
        guard tokens[index].kind == .word, SQLLexer.equalsIgnoringCase(text[tokens[index].range], "connection_id"),
            symbol(1, "("), symbol(2, ")"), !symbol(-1, ".")
        else { return nil }
        return tokens[index].range.lowerBound..<tokens[index + 2].range.upperBound
    }

    /// The select-list items (token index ranges, nested lists included) that have no alias: after
    /// `SELECT` (and its modifiers) at one parenthesis depth, separated by `,` at that depth, up to the clause
    /// that ends the list (`FROM`, `WHERE`, `INTO`, ..., a `;` or the closing parenthesis).
    static func unaliasedSelectItems(_ tokens: [Token], _ text: [UInt8]) -> [Range<Int>] {
        var items: [Range<Int>] = []
        /// Per open parenthesis depth: where the current item of a select list at that depth starts.
        var itemStarts: [Int?] = [nil]
        func closeItem(at end: Int) {
            if let start = itemStarts[itemStarts.count - 1], start < end, !hasAlias(tokens[start..<end], text) {
                items.append(start..<end)
            }
            itemStarts[itemStarts.count - 1] = nil
        }
        for (index, token) in tokens.enumerated() {
            let depth = itemStarts.count - 1
            switch token.kind {
            case .symbol:
                switch text[token.range.lowerBound] {
                case UInt8(ascii: "("):
                    itemStarts.append(nil)
                case UInt8(ascii: ")"):
                    closeItem(at: index)
                    if depth > 0 { itemStarts.removeLast() }
                case UInt8(ascii: ";"):
                    closeItem(at: index)
                    itemStarts = [nil]
                case UInt8(ascii: ","):
                    if itemStarts[depth] != nil {
                        closeItem(at: index)
                        itemStarts[depth] = index + 1
                    }
                default: break
                }
            case .word:
                let word = text[token.range]
                if SQLLexer.equalsIgnoringCase(word, "select") {
                    closeItem(at: index)
                    itemStarts[depth] = index + 1
                } else if itemStarts[depth] == index,
                    selectModifiers.contains(where: { SQLLexer.equalsIgnoringCase(word, $0) })
                {
                    itemStarts[depth] = index + 1
                } else if selectListEnds.contains(where: { SQLLexer.equalsIgnoringCase(word, $0) }) {
                    closeItem(at: index)
                }
            case .number, .quoted:
                break
            }
        }
        closeItem(at: tokens.count)
        return items
    }

    /// Words that end a select list.
    static let selectListEnds: [StaticString] = [
        "from", "into", "where", "group", "having", "window", "order", "limit", "offset", "fetch", "for", "lock",
        "union", "except", "intersect", "procedure",
    ]

    /// Words that may stand between `SELECT` and its first item.
    static let selectModifiers: [StaticString] = [
        "all", "distinct", "distinctrow", "high_priority", "straight_join", "sql_small_result", "sql_big_result",
        "sql_buffer_result", "sql_cache", "sql_no_cache", "sql_calc_found_rows",
    ]

    /// Words that end an expression or join two, so a word after them is no alias.
    static let notAliases: [StaticString] = [
        "end", "null", "true", "false", "unknown", "is", "not", "and", "or", "xor", "div", "mod", "like", "in",
        "between", "then", "else", "when", "case", "regexp", "rlike", "binary", "collate", "interval", "escape",
        "as",
    ]

    /// Whether a select-list item ends with an alias: `... AS name` at its own depth, or a trailing name
    /// right after the expression (`CONNECTION_ID() id`).
    static func hasAlias(_ item: ArraySlice<Token>, _ text: [UInt8]) -> Bool {
        var depth = 0
        for token in item {
            if token.kind == .symbol {
                switch text[token.range.lowerBound] {
                case UInt8(ascii: "("): depth += 1
                case UInt8(ascii: ")"): depth -= 1
                default: break
                }
            } else if depth == 0, token.kind == .word, SQLLexer.equalsIgnoringCase(text[token.range], "as") {
                return true
            }
        }
        guard item.count >= 2, let last = item.last else { return false }
        let previous = item[item.endIndex - 2]
        switch last.kind {
        case .quoted:
            break
        case .word:
            if notAliases.contains(where: { SQLLexer.equalsIgnoringCase(text[last.range], $0) }) { return false }
        case .number, .symbol:
            return false
        }
        switch previous.kind {
        case .symbol: return text[previous.range.lowerBound] == UInt8(ascii: ")")
        case .number, .quoted: return true
        case .word: return !notAliases.contains(where: { SQLLexer.equalsIgnoringCase(text[previous.range], $0) })
        }
    }

    /// The tokens and text of a COM_QUERY payload (command byte first) that is one statement (a trailing `;`
    /// dropped) and mentions `word` (lower case ASCII) anywhere, ignoring case; nil otherwise, or when it is
    /// longer than `maximumLength`. (The sessions ask this of many queries: the scan for `word`, which
    /// allocates nothing, comes first.)
    static func singleStatement(
        _ payload: ByteBuffer, mentioning word: StaticString, maximumLength: Int = 4_096
    ) -> (tokens: [Token], text: [UInt8])? {
        guard payload.readableBytes > 1, payload.readableBytes < maximumLength,
            payload.withUnsafeReadableBytes({ containsIgnoringCase($0, word) }),
            let text = payload.getBytes(at: payload.readerIndex + 1, length: payload.readableBytes - 1)
        else { return nil }
        var tokens = tokenize(text)
        if let last = tokens.last, last.kind == .symbol, text[last.range.lowerBound] == UInt8(ascii: ";") {
            tokens.removeLast()
        }
        return statementStarts(tokens, text).count == 1 ? (tokens, text) : nil
    }

    static func tokenize(_ text: [UInt8]) -> [Token] {
        text.withUnsafeBytes { raw in
            var tokens: [Token] = []
            var lexer = SQLLexer(text: raw)
            while let token = lexer.next() { tokens.append(token) }
            return tokens
        }
    }

    static func containsIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ word: StaticString) -> Bool {
        let needle = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        guard bytes.count >= needle.count else { return false }
        var index = 0
        while index <= bytes.count - needle.count {
            if lower(bytes[index]) == needle[0] {
                var offset = 1
                while offset < needle.count && lower(bytes[index + offset]) == needle[offset] { offset += 1 }
                if offset == needle.count { return true }
            }
            index += 1
        }
        return false
    }

    private static func lower(_ byte: UInt8) -> UInt8 {
        byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte + 32 : byte
    }
}
