public import NIOCore

extension Packets {
    /// `COM_CHANGE_USER`: log in as another user (or the same one) on an open connection, resetting the
    /// session. The auth response answers the connection's original greeting scramble.
    public struct ChangeUser: Sendable, Hashable {
        public enum DecodeError: Error, Hashable, Sendable {
            case truncated(field: String)
        }

        public var username: String
        public var authResponse: [UInt8]
        public var database: String
        /// Collation id; nil when the client did not send one.
        public var collation: UInt16?
        public var authPluginName: String?
        public var attributes: [String: String]

        public init(
            username: String, authResponse: [UInt8], database: String, collation: UInt16?, authPluginName: String?,
            attributes: [String: String] = [:]
        ) {
            self.username = username
            self.authResponse = authResponse
            self.database = database
            self.collation = collation
            self.authPluginName = authPluginName
            self.attributes = attributes
        }

        /// Decodes the packet (command byte included) with the connection's negotiated capabilities.
        public static func decode(_ payload: ByteBuffer, capabilities: CapabilityFlags) throws(DecodeError) -> Self {
            var buffer = payload
            guard buffer.readInteger(as: UInt8.self) == Command.changeUser.rawValue else {
                throw .truncated(field: "command")
            }
            guard let username = buffer.readNullTerminatedString() else { throw .truncated(field: "username") }
            var authResponse: [UInt8]
            if capabilities.contains(.secureConnection) {
                guard let length = buffer.readInteger(as: UInt8.self), let bytes = buffer.readBytes(length: Int(length))
                else { throw .truncated(field: "auth response") }
                authResponse = bytes
            } else {
                guard let text = buffer.readNullTerminatedString() else { throw .truncated(field: "auth response") }
                authResponse = Array(text.utf8)
            }
            guard let database = buffer.readNullTerminatedString() else { throw .truncated(field: "database") }
            let collation = buffer.readableBytes >= 2 ? buffer.readInteger(endianness: .little, as: UInt16.self) : nil
            var plugin: String?
            if capabilities.contains(.pluginAuth), buffer.readableBytes > 0 {
                plugin = buffer.readNullTerminatedString() ?? buffer.readString(length: buffer.readableBytes)
            }
            var attributes: [String: String] = [:]
            if capabilities.contains(.connectAttributes), buffer.readableBytes > 0 {
                guard let pairs = buffer.readConnectAttributes() else { throw .truncated(field: "attributes") }
                attributes = Dictionary(pairs, uniquingKeysWith: { _, last in last })
            }
            return Self(
                username: username, authResponse: authResponse, database: database, collation: collation,
                authPluginName: plugin, attributes: attributes)
        }

        public func encode(into buffer: inout ByteBuffer, capabilities: CapabilityFlags) {
            buffer.writeInteger(Command.changeUser.rawValue)
            buffer.writeNullTerminatedString(username)
            if capabilities.contains(.secureConnection) {
                buffer.writeInteger(UInt8(truncatingIfNeeded: min(authResponse.count, 255)))
                buffer.writeBytes(authResponse.prefix(255))
            } else {
                buffer.writeBytes(authResponse)
                buffer.writeInteger(UInt8(0))
            }
            buffer.writeNullTerminatedString(database)
            buffer.writeInteger(collation ?? 45, endianness: .little)
            if capabilities.contains(.pluginAuth) { buffer.writeNullTerminatedString(authPluginName ?? "") }
            if capabilities.contains(.connectAttributes) {
                buffer.writeConnectAttributes(attributes.sorted(by: { $0.key < $1.key }).map { ($0.key, $0.value) })
            }
        }
    }
}
