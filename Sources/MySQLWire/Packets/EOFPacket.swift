public import NIOCore

extension Packets {
    /// EOF_Packet: `0xFE`, then with protocol 4.1 warnings and status flags (2 bytes each). It ends column
    /// definitions and rows for clients without `CLIENT_DEPRECATE_EOF`, which get an OK packet with the
    /// `0xFE` header instead. A `0xFE` packet shorter than 9 bytes is an EOF; from 9 bytes on, a row that
    /// starts with an 8-byte length-encoded integer (or that OK packet).
    public struct EOFPacket: Hashable, Sendable {
        public enum DecodeError: Error, Hashable, Sendable {
            case notAnEOFPacket
            case truncated
        }

        public var warnings: UInt16
        public var status: StatusFlags

        public init(warnings: UInt16 = 0, status: StatusFlags = [.autocommit]) {
            self.warnings = warnings
            self.status = status
        }

        /// Whether `payload` is an EOF packet (not a row or an OK packet that also starts with `0xFE`).
        public static func isEOF(_ payload: ByteBuffer) -> Bool {
            isEOF(header: payload.getInteger(at: payload.readerIndex, as: UInt8.self), length: payload.readableBytes)
        }

        /// The same from a packet's first byte and its payload length (for scanners that have no whole packet).
        public static func isEOF(header: UInt8?, length: Int) -> Bool { header == 0xFE && length < 9 }

        public static func decode(_ payload: ByteBuffer, capabilities: CapabilityFlags) throws(DecodeError) -> Self {
            guard isEOF(payload) else { throw .notAnEOFPacket }
            var buffer = payload
            buffer.moveReaderIndex(forwardBy: 1)
            guard capabilities.contains(.protocol41) else { return Self(warnings: 0, status: []) }
            guard let warnings = buffer.readInteger(endianness: .little, as: UInt16.self),
                let flags = buffer.readInteger(endianness: .little, as: UInt16.self)
            else { throw .truncated }
            return Self(warnings: warnings, status: StatusFlags(rawValue: flags))
        }

        public func encode(into buffer: inout ByteBuffer, capabilities: CapabilityFlags) {
            buffer.writeInteger(UInt8(0xFE))
            guard capabilities.contains(.protocol41) else { return }
            buffer.writeInteger(warnings, endianness: .little)
            buffer.writeInteger(status.rawValue, endianness: .little)
        }
    }
}
