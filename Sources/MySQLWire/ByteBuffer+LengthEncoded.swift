public import NIOCore

extension ByteBuffer {
    /// Reads a length-encoded integer (`< 0xFB` one byte; `0xFC` + 2; `0xFD` + 3; `0xFE` + 8 bytes).
    /// Returns nil when the buffer is too short or starts with `0xFB` (NULL) or `0xFF` (not an integer);
    /// the reader index is unchanged then.
    public mutating func readLengthEncodedInteger() -> UInt64? {
        guard let first = getInteger(at: readerIndex, as: UInt8.self) else { return nil }
        let value: UInt64?
        let width: Int
        switch first {
        case 0..<0xFB:
            value = UInt64(first)
            width = 1
        case 0xFC:
            value = getInteger(at: readerIndex + 1, endianness: .little, as: UInt16.self).map(UInt64.init)
            width = 3
        case 0xFD:
            if let low = getInteger(at: readerIndex + 1, endianness: .little, as: UInt16.self),
                let high = getInteger(at: readerIndex + 3, as: UInt8.self)
            {
                value = UInt64(low) | UInt64(high) << 16
            } else {
                value = nil
            }
            width = 4
        case 0xFE:
            value = getInteger(at: readerIndex + 1, endianness: .little, as: UInt64.self)
            width = 9
        default:
            return nil
        }
        guard let value else { return nil }
        moveReaderIndex(forwardBy: width)
        return value
    }

    /// Writes the shortest length-encoded form of `value`.
    @discardableResult
    public mutating func writeLengthEncodedInteger(_ value: UInt64) -> Int {
        switch value {
        case 0..<0xFB:
            return writeInteger(UInt8(value))
        case 0xFB...0xFFFF:
            return writeInteger(UInt8(0xFC)) + writeInteger(UInt16(value), endianness: .little)
        case 0x1_0000...0xFF_FFFF:
            return writeInteger(UInt8(0xFD)) + writeInteger(UInt16(truncatingIfNeeded: value), endianness: .little)
                + writeInteger(UInt8(truncatingIfNeeded: value >> 16))
        default:
            return writeInteger(UInt8(0xFE)) + writeInteger(value, endianness: .little)
        }
    }

    /// Reads a length-encoded string's bytes; nil (reader index unchanged) when incomplete.
    public mutating func readLengthEncodedSlice() -> ByteBuffer? {
        let start = readerIndex
        guard let length = readLengthEncodedInteger(), length <= UInt64(readableBytes),
            let slice = readSlice(length: Int(length))
        else {
            moveReaderIndex(to: start)
            return nil
        }
        return slice
    }

    @discardableResult
    public mutating func writeLengthEncodedString(_ string: String) -> Int {
        writeLengthEncodedInteger(UInt64(string.utf8.count)) + writeString(string)
    }
}

extension ByteBuffer {
    /// The `CLIENT_CONNECT_ATTRS` block of a handshake response or `COM_CHANGE_USER`: a length-encoded
    /// block of length-encoded key/value strings. Nil when it is cut short.
    mutating func readConnectAttributes() -> [(String, String)]? {
        guard var block = readLengthEncodedSlice() else { return nil }
        var attributes: [(String, String)] = []
        while block.readableBytes > 0 {
            guard let key = block.readLengthEncodedSlice(), let value = block.readLengthEncodedSlice() else {
                return nil
            }
            attributes.append((String(buffer: key), String(buffer: value)))
        }
        return attributes
    }

    mutating func writeConnectAttributes(_ attributes: [(String, String)]) {
        var block = ByteBuffer()
        for (key, value) in attributes {
            block.writeLengthEncodedString(key)
            block.writeLengthEncodedString(value)
        }
        writeLengthEncodedInteger(UInt64(block.readableBytes))
        writeBuffer(&block)
    }
}
