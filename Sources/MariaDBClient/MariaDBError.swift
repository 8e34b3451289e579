/// An error from a MariaDB server or from talking to one: what failed, the server's errno and
/// SQLSTATE when it sent one, and the message.
public struct MariaDBError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case connect, query, timeout, busy, closed, tls, invalidArgument
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// Opening the connection or logging in failed.
        public static let connect = Code(.connect)
        /// The server answered a statement with an error, or the connection broke during one.
        public static let query = Code(.query)
        /// The operation did not finish before its deadline (a hung or overloaded server).
        public static let timeout = Code(.timeout)
        /// A previous operation on this connection is still running (it timed out and has not returned).
        public static let busy = Code(.busy)
        /// The connection was closed, or broke earlier.
        public static let closed = Code(.closed)
        /// TLS was required and the connection is not encrypted, or the certificate was refused.
        public static let tls = Code(.tls)
        /// The caller passed something libmariadb refused (for example an option value).
        public static let invalidArgument = Code(.invalidArgument)

        public var description: String { base.rawValue }
    }

    public var code: Code
    /// The server or client library error number (0 when none).
    public var errno: UInt32
    /// The SQLSTATE (`HY000` when none).
    public var sqlState: String
    public var message: String
    /// `host:port` of the server.
    public var server: String

    public init(code: Code, errno: UInt32 = 0, sqlState: String = "HY000", message: String, server: String) {
        self.code = code
        self.errno = errno
        self.sqlState = sqlState
        self.message = message
        self.server = server
    }

    public var description: String {
        if errno != 0 { return "\(server): error \(errno) (\(sqlState)): \(message)" }
        return "\(server): \(message)"
    }
}
