public import NIOCore

extension Packets {
    /// The client's answer to `HandshakeV10` (protocol 4.1), and the 32-byte `SSLRequest` prefix of it.
    ///
    /// `int<4>` capabilities · `int<4>` max packet size · `int<1>` collation · `string<19>` reserved ·
    /// `int<4>` MariaDB extended capabilities · `string<NUL>` user · auth data (length-encoded, or
    /// 1-byte length, or NUL-terminated, by capability) · `string<NUL>` database (`CONNECT_WITH_DB`) ·
    /// `string<NUL>` auth plugin (`PLUGIN_AUTH`) · length-encoded attribute pairs (`CONNECT_ATTRS`).
    /// Optional parts are read with the capabilities both sides share.
    public struct HandshakeResponse41: Hashable, Sendable {
        public enum DecodeError: Error, Hashable, Sendable {
            case truncated(field: String)
            case protocol41Required
        }

        public var capabilities: CapabilityFlags
        public var maxPacketSize: UInt32
        public var collation: UInt8
        public var username: String
        public var authResponse: [UInt8]
        public var database: String?
        public var authPluginName: String?
        public var attributes: [(String, String)]

        public init(
            capabilities: CapabilityFlags, maxPacketSize: UInt32 = 1 << 24, collation: UInt8, username: String,
            authResponse: [UInt8], database: String? = nil, authPluginName: String? = nil,
            attributes: [(String, String)] = []
        ) {
            self.capabilities = capabilities
            self.maxPacketSize = maxPacketSize
            self.collation = collation
            self.username = username
            self.authResponse = authResponse
            self.database = database
            self.authPluginName = authPluginName
            self.attributes = attributes
        }

        public static func == (lhs: Self, rhs: Self) -> Bool {
            lhs.capabilities == rhs.capabilities && lhs.maxPacketSize == rhs.maxPacketSize
                && lhs.collation == rhs.collation && lhs.username == rhs.username
                && lhs.authResponse == rhs.authResponse && lhs.database == rhs.database
                && lhs.authPluginName == rhs.authPluginName
                && lhs.attributes.map(\.0) == rhs.attributes.map(\.0)
                && lhs.attributes.map(\.1) == rhs.attributes.map(\.1)
        }

        public func hash(into hasher: inout Hasher) {
            hasher.combine(capabilities)
            hasher.combine(username)
            hasher.combine(authResponse)
        }

        /// True when `payload` is an `SSLRequest`: the fixed 32-byte prefix alone, with `CLIENT_SSL`.
        public static func isSSLRequest(_ payload: ByteBuffer) -> Bool {
            guard payload.readableBytes == 32,
                let low = payload.getInteger(at: payload.readerIndex, endianness: .little, as: UInt32.self)
            else { return false }
            return CapabilityFlags(rawValue: UInt64(low)).contains(.ssl)
        }

        /// Decodes with the server's capabilities (what is read is what both sides have).
        public static func decode(_ payload: ByteBuffer, serverCapabilities: CapabilityFlags) throws(DecodeError)
            -> Self
        {
            var buffer = payload
            guard let low = buffer.readInteger(endianness: .little, as: UInt32.self),
                let maxPacket = buffer.readInteger(endianness: .little, as: UInt32.self),
                let collation = buffer.readInteger(as: UInt8.self), buffer.readBytes(length: 19) != nil,
                let extended = buffer.readInteger(endianness: .little, as: UInt32.self)
            else { throw .truncated(field: "fixed header") }
            var client = CapabilityFlags(rawValue: UInt64(low))
            guard client.contains(.protocol41) else { throw .protocol41Required }
            if !client.contains(.longPassword) && !serverCapabilities.contains(.longPassword) {
                client.formUnion(CapabilityFlags(rawValue: UInt64(extended) << 32))
            }
            let shared = client.negotiated(with: serverCapabilities)
            guard let username = buffer.readNullTerminatedString() else { throw .truncated(field: "username") }
            var authResponse: [UInt8]
            if shared.contains(.pluginAuthLengthEncodedClientData) {
                guard let slice = buffer.readLengthEncodedSlice() else { throw .truncated(field: "auth response") }
                authResponse = Array(slice.readableBytesView)
            } else if shared.contains(.secureConnection) {
                guard let length = buffer.readInteger(as: UInt8.self), let bytes = buffer.readBytes(length: Int(length))
                else { throw .truncated(field: "auth response") }
                authResponse = bytes
            } else {
                guard let text = buffer.readNullTerminatedString() else { throw .truncated(field: "auth response") }
                authResponse = Array(text.utf8)
            }
            var database: String?
            if shared.contains(.connectWithDB) {
                guard let name = buffer.readNullTerminatedString() else { throw .truncated(field: "database") }
                database = name
            }
            var plugin: String?
            if shared.contains(.pluginAuth), buffer.readableBytes > 0 {
                plugin = buffer.readNullTerminatedString() ?? buffer.readString(length: buffer.readableBytes)
            }
            var attributes: [(String, String)] = []
            if shared.contains(.connectAttributes), buffer.readableBytes > 0 {
                guard let pairs = buffer.readConnectAttributes() else { throw .truncated(field: "attributes") }
                attributes = pairs
            }
            return Self(
                capabilities: client, maxPacketSize: maxPacket, collation: collation, username: username,
                authResponse: authResponse, database: database, authPluginName: plugin, attributes: attributes)
        }

        /// Writes the 32-byte fixed part (alone, it is the `SSLRequest`).
        public func encodeFixedPart(into buffer: inout ByteBuffer) {
            buffer.writeInteger(capabilities.lower, endianness: .little)
            buffer.writeInteger(maxPacketSize, endianness: .little)
            buffer.writeInteger(collation)
            buffer.writeRepeatingByte(0, count: 19)
            buffer.writeInteger(capabilities.contains(.longPassword) ? 0 : capabilities.upper, endianness: .little)
        }

        public func encode(into buffer: inout ByteBuffer) {
            encodeFixedPart(into: &buffer)
            buffer.writeNullTerminatedString(username)
            if capabilities.contains(.pluginAuthLengthEncodedClientData) {
                buffer.writeLengthEncodedInteger(UInt64(authResponse.count))
                buffer.writeBytes(authResponse)
            } else if capabilities.contains(.secureConnection) {
                buffer.writeInteger(UInt8(truncatingIfNeeded: authResponse.count))
                buffer.writeBytes(authResponse.prefix(255))
            } else {
                buffer.writeBytes(authResponse)
                buffer.writeInteger(UInt8(0))
            }
            if capabilities.contains(.connectWithDB) { buffer.writeNullTerminatedString(database ?? "") }
            if capabilities.contains(.pluginAuth) { buffer.writeNullTerminatedString(authPluginName ?? "") }
            if capabilities.contains(.connectAttributes) { buffer.writeConnectAttributes(attributes) }
        }
    }
}
