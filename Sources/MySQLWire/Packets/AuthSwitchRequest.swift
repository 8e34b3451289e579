public import NIOCore

extension Packets {
    /// AuthSwitchRequest: `0xFE`, `string<NUL>` plugin name, plugin data. `mysql_native_password`'s data
    /// is its 20-byte scramble and a NUL; other plugins' data is taken as is (`client_ed25519`'s 32-byte
    /// nonce may end in a zero byte).
    public struct AuthSwitchRequest: Hashable, Sendable {
        public var pluginName: String
        public var pluginData: [UInt8]

        public init(pluginName: String, pluginData: [UInt8]) {
            self.pluginName = pluginName
            self.pluginData = pluginData
        }

        public func encode(into buffer: inout ByteBuffer) {
            buffer.writeInteger(UInt8(0xFE))
            buffer.writeString(pluginName)
            buffer.writeInteger(UInt8(0))
            buffer.writeBytes(pluginData)
            if pluginName == Self.nativePassword { buffer.writeInteger(UInt8(0)) }
        }

        private static let nativePassword = "mysql_native_password"

        public static func decode(_ payload: ByteBuffer) -> Self? {
            var buffer = payload
            guard buffer.readInteger(as: UInt8.self) == 0xFE, let name = buffer.readNullTerminatedString() else {
                return nil
            }
            var data = Array(buffer.readableBytesView)
            if name == nativePassword, data.last == 0 { data.removeLast() }
            return Self(pluginName: name, pluginData: data)
        }
    }
}
