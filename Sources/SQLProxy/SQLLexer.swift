/// Splits SQL text into words, numbers, single-character symbols, and strings and quoted identifiers (one
/// token each), skipping whitespace and comments, without allocating. Executable comments (`/*! ... */`,
/// `/*M! ... */`) are read as code, as a server reads them, and noted in `sawExecutableComment`.
struct SQLLexer: IteratorProtocol {
    struct Token {
        /// `quoted` is a string or a quoted identifier (its range includes the quotes).
        enum Kind { case word, number, symbol, quoted }
        var kind: Kind
        var range: Range<Int>
    }

    let text: UnsafeRawBufferPointer
    private var index = 0
    private(set) var sawExecutableComment = false

    init(text: UnsafeRawBufferPointer) { self.text = text }

    static func isWordByte(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: "_") || byte == UInt8(ascii: "$") || byte >= 0x80
            || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
            || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
            || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
    }

    private func peek(_ offset: Int) -> UInt8? {
        offset < text.count ? text[offset] : nil
    }

    mutating func next() -> Token? {
        let count = text.count
        while index < count {
            let byte = text[index]
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"), 0x0B, 0x0C:
                index += 1
            case UInt8(ascii: "'"), UInt8(ascii: "\""), UInt8(ascii: "`"):
                let start = index
                skipQuoted(byte)
                return Token(kind: .quoted, range: start..<min(index, count))
            case UInt8(ascii: "/") where peek(index + 1) == UInt8(ascii: "*"):
                if peek(index + 2) == UInt8(ascii: "!")
                    || (peek(index + 2) == UInt8(ascii: "M") && peek(index + 3) == UInt8(ascii: "!"))
                {
                    sawExecutableComment = true
                    index += peek(index + 2) == UInt8(ascii: "!") ? 3 : 4
                    while index < count && text[index] >= UInt8(ascii: "0") && text[index] <= UInt8(ascii: "9") {
                        index += 1  // the version number of /*!50001 ... */
                    }
                    continue
                }
                index += 2
                while index < count && !(text[index] == UInt8(ascii: "*") && peek(index + 1) == UInt8(ascii: "/")) {
                    index += 1
                }
                index += 2
            case UInt8(ascii: "*") where peek(index + 1) == UInt8(ascii: "/"):
                index += 2  // the end of an executable comment
            case UInt8(ascii: "#"):
                while index < count && text[index] != UInt8(ascii: "\n") { index += 1 }
            case UInt8(ascii: "-")
            where peek(index + 1) == UInt8(ascii: "-")
                && [UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r")].contains(
                    peek(index + 2) ?? 0):
                while index < count && text[index] != UInt8(ascii: "\n") { index += 1 }
            default:
                let start = index
                guard Self.isWordByte(byte) else {
                    index += 1
                    return Token(kind: .symbol, range: start..<index)
                }
                var isNumber = true
                while index < count && Self.isWordByte(text[index]) {
                    if text[index] < UInt8(ascii: "0") || text[index] > UInt8(ascii: "9") { isNumber = false }
                    index += 1
                }
                return Token(kind: isNumber ? .number : .word, range: start..<index)
            }
        }
        return nil
    }

    private mutating func skipQuoted(_ quote: UInt8) {
        let count = text.count
        index += 1
        while index < count {
            if text[index] == UInt8(ascii: "\\") && quote != UInt8(ascii: "`") {
                index += 2
                continue
            }
            if text[index] == quote {
                if peek(index + 1) == quote {
                    index += 2
                    continue
                }
                break
            }
            index += 1
        }
        index += 1
    }

    /// Whether `bytes` spell `word` (lower case ASCII), ignoring case.
    static func equalsIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ word: StaticString) -> Bool {
        guard bytes.count == word.utf8CodeUnitCount else { return false }
        let expected = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        for index in 0..<bytes.count {
            let byte = bytes[index]
            let lowered = byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte + 32 : byte
            if lowered != expected[index] { return false }
        }
        return true
    }

    /// Whether `bytes` spell `word` (lower case ASCII), ignoring case.
    static func equalsIgnoringCase(_ bytes: ArraySlice<UInt8>, _ word: StaticString) -> Bool {
        bytes.withUnsafeBytes { equalsIgnoringCase($0, word) }
    }
}
