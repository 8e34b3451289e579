public import NIOCore

/// One logical MySQL protocol packet: its sequence id and its whole payload (continuation packets of a
/// payload of 16 MiB − 1 or more already joined).
public struct MySQLPacket: Hashable, Sendable {
    /// The largest payload one physical packet can carry; a payload this long continues in the next one.
    public static let maxChunk = 0xFF_FFFF

    /// Sequence id of the first physical packet.
    public var sequenceID: UInt8
    public var payload: ByteBuffer

    public init(sequenceID: UInt8, payload: ByteBuffer) {
        self.sequenceID = sequenceID
        self.payload = payload
    }

    /// Sequence id the next packet of the exchange must carry, after this packet's physical chunks.
    public var nextSequenceID: UInt8 {
        sequenceID &+ UInt8(truncatingIfNeeded: payload.readableBytes / Self.maxChunk + 1)
    }
}

/// Framing errors. Each ends the connection; where the protocol allows, the peer first gets an ERR.
public struct MySQLWireError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: Hashable, Sendable {
        /// A payload larger than the configured maximum (`max_allowed_packet`); MySQL errno 1153.
        case packetTooLarge(size: Int, limit: Int)
        /// A continuation packet whose sequence id does not follow the previous one.
        case outOfSequence(expected: UInt8, got: UInt8)
        /// The connection closed in the middle of a packet.
        case truncated(missing: Int)
    }

    public var kind: Kind

    public init(_ kind: Kind) { self.kind = kind }

    public var description: String {
        switch kind {
        case .packetTooLarge(let size, let limit):
            "packet of \(size) bytes is larger than the limit of \(limit) bytes (max_allowed_packet)"
        case .outOfSequence(let expected, let got):
            "packets out of order: expected sequence id \(expected), got \(got)"
        case .truncated(let missing):
            "connection closed in the middle of a packet (\(missing) bytes missing)"
        }
    }
}
