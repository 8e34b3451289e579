public import NIOCore

extension Packets {
    /// ERR_Packet: `0xFF`, error code (2 bytes), with protocol 4.1 `#` and a 5-byte SQLSTATE, then the
    /// message (rest of the packet).
    public struct ErrorPacket: Hashable, Sendable {
        public enum DecodeError: Error, Hashable, Sendable {
            case notAnErrorPacket
            case truncated
        }

        /// MySQL/MariaDB error number (for example 1045, 1153).
        public var errorCode: UInt16
        /// Five-character SQLSTATE (for example `28000`).
        public var sqlState: String
        public var message: String

        public init(errorCode: UInt16, sqlState: String, message: String) {
            self.errorCode = errorCode
            self.sqlState = sqlState
            self.message = message
        }

        public static func decode(_ payload: ByteBuffer, capabilities: CapabilityFlags) throws(DecodeError) -> Self {
            var buffer = payload
            guard buffer.readInteger(as: UInt8.self) == 0xFF else { throw .notAnErrorPacket }
            guard let code = buffer.readInteger(endianness: .little, as: UInt16.self) else { throw .truncated }
            var sqlState = "HY000"
            if capabilities.contains(.protocol41), buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) == 0x23 {
                buffer.moveReaderIndex(forwardBy: 1)
                guard let state = buffer.readString(length: 5) else { throw .truncated }
                sqlState = state
            }
            return Self(
                errorCode: code, sqlState: sqlState, message: buffer.readString(length: buffer.readableBytes) ?? "")
        }

        public func encode(into buffer: inout ByteBuffer, capabilities: CapabilityFlags) {
            buffer.writeInteger(UInt8(0xFF))
            buffer.writeInteger(errorCode, endianness: .little)
            if capabilities.contains(.protocol41) {
                buffer.writeInteger(UInt8(0x23))
                let state = Array(sqlState.utf8.prefix(5))
                buffer.writeBytes(state + Array(repeating: UInt8(ascii: "0"), count: 5 - state.count))
            }
            buffer.writeString(message)
        }
    }
}
