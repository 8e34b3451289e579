/// Why a compressed-protocol stream was refused. Each ends the connection: the stream cannot be
/// resynchronised once a compressed packet is wrong.
public struct CompressedPacketError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: Hashable, Sendable {
        /// A header announces more than the configured limit, compressed or once inflated; refused before
        /// its payload is read or inflated.
        case payloadTooLarge(size: Int, limit: Int)
        /// A compressed packet whose sequence id is not the one the exchange expects.
        case outOfSequence(expected: UInt8, got: UInt8)
        /// The payload is not a valid zlib stream (bad header, bad data, bad checksum, or cut short).
        /// `zlibStatus` is zlib's return code.
        case corruptData(zlibStatus: Int32)
        /// The payload inflates to fewer bytes than its header declares.
        case inflatedTooShort(declared: Int, actual: Int)
        /// The payload inflates to more bytes than its header declares (inflating stopped one byte past
        /// the declared length).
        case inflatedTooLong(declared: Int)
        /// Bytes follow the end of the zlib stream inside the compressed payload.
        case trailingBytes(count: Int)
        /// The connection closed in the middle of a compressed packet.
        case truncated(missing: Int)
    }

    public var kind: Kind

    public init(_ kind: Kind) { self.kind = kind }

    /// The error MariaDB's server reports for the same fault (`ER_NET_PACKET_TOO_LARGE`,
    /// `ER_NET_PACKETS_OUT_OF_ORDER`, `ER_NET_UNCOMPRESS_ERROR`, `ER_NET_READ_ERROR`), all SQLSTATE 08S01.
    public var serverErrno: UInt16 {
        switch kind {
        case .payloadTooLarge: 1153
        case .outOfSequence: 1156
        case .corruptData, .inflatedTooShort, .inflatedTooLong, .trailingBytes: 1157
        case .truncated: 1158
        }
    }

    public var description: String {
        switch kind {
        case .payloadTooLarge(let size, let limit):
            "compressed packet of \(size) bytes is larger than the limit of \(limit) bytes"
        case .outOfSequence(let expected, let got):
            "compressed packets out of order: expected sequence id \(expected), got \(got)"
        case .corruptData(let status):
            "compressed packet is not valid zlib data (zlib status \(status))"
        case .inflatedTooShort(let declared, let actual):
            "compressed packet inflates to \(actual) bytes, not the \(declared) its header declares"
        case .inflatedTooLong(let declared):
            "compressed packet inflates to more than the \(declared) bytes its header declares"
        case .trailingBytes(let count):
            "compressed packet has \(count) bytes after the end of its zlib stream"
        case .truncated(let missing):
            "connection closed in the middle of a compressed packet (\(missing) bytes missing)"
        }
    }
}
