public import NIOCore

extension Packets {
    /// Initial handshake packet (protocol version 10), sent by the server first.
    ///
    /// `int<1>` protocol version (10) · `string<NUL>` server version · `int<4>` connection id ·
    /// `string<8>` scramble part 1 · `int<1>` reserved · `int<2>` capabilities (low) · `int<1>` collation ·
    /// `int<2>` status · `int<2>` capabilities (high) · `int<1>` plugin data length · `string<6>` filler ·
    /// `int<4>` MariaDB extended capabilities (filler when `CLIENT_MYSQL`, bit 0, is set) ·
    /// `string<max(12, length − 9)>` scramble part 2 · `int<1>` reserved · `string<NUL>` auth plugin name.
    public struct HandshakeV10: Hashable, Sendable {
        public enum DecodeError: Error, Hashable, Sendable {
            case unsupportedProtocolVersion(UInt8)
            case truncated(field: String)
        }

        public var serverVersion: String
        public var connectionID: UInt32
        /// The whole scramble (auth plugin data), usually 20 bytes.
        public var scramble: [UInt8]
        public var capabilities: CapabilityFlags
        public var collation: UInt8
        public var status: StatusFlags
        public var authPluginName: String

        public init(
            serverVersion: String, connectionID: UInt32, scramble: [UInt8], capabilities: CapabilityFlags,
            collation: UInt8, status: StatusFlags, authPluginName: String
        ) {
            self.serverVersion = serverVersion
            self.connectionID = connectionID
            self.scramble = scramble
            self.capabilities = capabilities
            self.collation = collation
            self.status = status
            self.authPluginName = authPluginName
        }

        public static func decode(_ payload: ByteBuffer) throws(DecodeError) -> Self {
            var buffer = payload
            guard let version = buffer.readInteger(as: UInt8.self) else { throw .truncated(field: "protocol version") }
            guard version == 10 else { throw .unsupportedProtocolVersion(version) }
            guard let serverVersion = buffer.readNullTerminatedString() else {
                throw .truncated(field: "server version")
            }
            guard let connectionID = buffer.readInteger(endianness: .little, as: UInt32.self),
                let part1 = buffer.readBytes(length: 8), buffer.readInteger(as: UInt8.self) != nil,
                let lowCapabilities = buffer.readInteger(endianness: .little, as: UInt16.self)
            else { throw .truncated(field: "connection id, scramble or capabilities") }
            guard let collation = buffer.readInteger(as: UInt8.self),
                let status = buffer.readInteger(endianness: .little, as: UInt16.self),
                let highCapabilities = buffer.readInteger(endianness: .little, as: UInt16.self),
                let pluginDataLength = buffer.readInteger(as: UInt8.self),
                buffer.readBytes(length: 6) != nil,
                let extended = buffer.readInteger(endianness: .little, as: UInt32.self)
            else { throw .truncated(field: "collation, status or extended capabilities") }
            var capabilities = CapabilityFlags(rawValue: UInt64(lowCapabilities) | UInt64(highCapabilities) << 16)
            if !capabilities.contains(.longPassword) {  // CLIENT_MYSQL unset: MariaDB's extended capabilities
                capabilities.formUnion(CapabilityFlags(rawValue: UInt64(extended) << 32))
            }
            var scramble = part1
            if capabilities.contains(.secureConnection) {
                let length = max(12, Int(pluginDataLength) - 9)
                guard let part2 = buffer.readBytes(length: length) else { throw .truncated(field: "scramble part 2") }
                scramble += part2
                buffer.moveReaderIndex(forwardBy: min(1, buffer.readableBytes))
            }
            var plugin = ""
            if capabilities.contains(.pluginAuth) {
                plugin = buffer.readNullTerminatedString() ?? buffer.readString(length: buffer.readableBytes) ?? ""
            }
            return Self(
                serverVersion: serverVersion, connectionID: connectionID, scramble: scramble,
                capabilities: capabilities,
                collation: collation, status: StatusFlags(rawValue: status), authPluginName: plugin)
        }

        public func encode(into buffer: inout ByteBuffer) {
            buffer.writeInteger(UInt8(10))
            buffer.writeNullTerminatedString(serverVersion)
            buffer.writeInteger(connectionID, endianness: .little)
            let part1 = Array(scramble.prefix(8)) + Array(repeating: 0, count: max(0, 8 - scramble.count))
            buffer.writeBytes(part1)
            buffer.writeInteger(UInt8(0))
            buffer.writeInteger(UInt16(truncatingIfNeeded: capabilities.rawValue), endianness: .little)
            buffer.writeInteger(collation)
            buffer.writeInteger(status.rawValue, endianness: .little)
            buffer.writeInteger(UInt16(truncatingIfNeeded: capabilities.rawValue >> 16), endianness: .little)
            let part2 = Array(scramble.dropFirst(8))
            buffer.writeInteger(capabilities.contains(.pluginAuth) ? UInt8(truncatingIfNeeded: part2.count + 9) : 0)
            buffer.writeRepeatingByte(0, count: 6)
            buffer.writeInteger(capabilities.contains(.longPassword) ? 0 : capabilities.upper, endianness: .little)
            if capabilities.contains(.secureConnection) {
                buffer.writeBytes(part2 + Array(repeating: 0, count: max(0, 12 - part2.count)))
                buffer.writeInteger(UInt8(0))
            }
            if capabilities.contains(.pluginAuth) { buffer.writeNullTerminatedString(authPluginName) }
        }
    }
}
