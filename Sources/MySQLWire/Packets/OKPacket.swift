public import NIOCore

extension Packets {
    /// OK_Packet: header `0x00` (or `0xFE` when it replaces EOF), affected rows and last insert id
    /// (length-encoded), status flags and warnings (protocol 4.1), then info.
    public struct OKPacket: Hashable, Sendable {
        public enum DecodeError: Error, Hashable, Sendable {
            case notAnOKPacket
            case truncated
        }

        public var affectedRows: UInt64
        public var lastInsertID: UInt64
        public var status: StatusFlags
        public var warnings: UInt16
        /// Human-readable info (session-state tracking data is left inside when present).
        public var info: String

        public init(
            affectedRows: UInt64 = 0, lastInsertID: UInt64 = 0, status: StatusFlags = [.autocommit],
            warnings: UInt16 = 0, info: String = ""
        ) {
            self.affectedRows = affectedRows
            self.lastInsertID = lastInsertID
            self.status = status
            self.warnings = warnings
            self.info = info
        }

        public static func decode(_ payload: ByteBuffer, capabilities: CapabilityFlags) throws(DecodeError) -> Self {
            var buffer = payload
            guard let header = buffer.readInteger(as: UInt8.self), header == 0x00 || header == 0xFE else {
                throw .notAnOKPacket
            }
            guard let affected = buffer.readLengthEncodedInteger(), let insertID = buffer.readLengthEncodedInteger()
            else { throw .truncated }
            var status: StatusFlags = []
            var warnings: UInt16 = 0
            if capabilities.contains(.protocol41) || capabilities.contains(.transactions) {
                guard let flags = buffer.readInteger(endianness: .little, as: UInt16.self) else { throw .truncated }
                status = StatusFlags(rawValue: flags)
                if capabilities.contains(.protocol41) {
                    guard let count = buffer.readInteger(endianness: .little, as: UInt16.self) else { throw .truncated }
                    warnings = count
                }
            }
            let info: String
            if capabilities.contains(.sessionTrack), let slice = buffer.readLengthEncodedSlice() {
                info = String(buffer: slice)
            } else {
                info = buffer.readString(length: buffer.readableBytes) ?? ""
            }
            return Self(affectedRows: affected, lastInsertID: insertID, status: status, warnings: warnings, info: info)
        }

        public func encode(into buffer: inout ByteBuffer, capabilities: CapabilityFlags, header: UInt8 = 0x00) {
            buffer.writeInteger(header)
            buffer.writeLengthEncodedInteger(affectedRows)
            buffer.writeLengthEncodedInteger(lastInsertID)
            if capabilities.contains(.protocol41) {
                buffer.writeInteger(status.rawValue, endianness: .little)
                buffer.writeInteger(warnings, endianness: .little)
            } else if capabilities.contains(.transactions) {
                buffer.writeInteger(status.rawValue, endianness: .little)
            }
            if capabilities.contains(.sessionTrack) {
                if !info.isEmpty { buffer.writeLengthEncodedString(info) }
            } else {
                buffer.writeString(info)
            }
        }
    }
}
