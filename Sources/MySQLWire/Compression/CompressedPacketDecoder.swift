public import NIOCore

/// Reads the compressed protocol (`CLIENT_COMPRESS`): splits the wire bytes into compressed packets,
/// inflates each one and hands back the ordinary packet stream they carry.
///
/// Every length is checked as soon as the 7-byte header arrives: a packet announcing more than
/// `maxPayloadSize` (compressed, or once inflated) is refused before its payload is read, and inflating
/// never produces more than the declared length (plus one byte, to tell "too long" from "exact"), so a
/// small zlib bomb costs at most `maxPayloadSize + 1` bytes. A payload must inflate to exactly its declared
/// length, and nothing may follow its zlib stream. See ``CompressedPacket`` for the sequence-id rules.
///
/// With `expectedSequenceID` set, every packet must carry it, and it then advances by one per packet, as
/// MariaDB's server checks; with `nil` (the default) sequence ids are reported but not checked, as
/// libmariadb does.
public struct CompressedPacketDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = CompressedPacket

    /// The inflated bytes of one or more consecutive compressed packets.
    public struct InnerStream: Hashable, Sendable {
        /// A piece of the ordinary packet stream (4-byte headers and payloads), in wire order.
        public var bytes: ByteBuffer
        /// Sequence id of the first and of the last compressed packet read.
        public var firstSequenceID: UInt8
        public var lastSequenceID: UInt8
        /// How many compressed packets were read.
        public var packetCount: Int
    }

    /// Largest payload one compressed packet may carry, compressed or inflated; at most
    /// ``CompressedPacket/maxPayloadLength``.
    public let maxPayloadSize: Int
    /// The sequence id the next compressed packet must carry, or `nil` not to check.
    public var expectedSequenceID: UInt8?
    /// Sequence id of the last compressed packet decoded.
    public private(set) var lastSequenceID: UInt8?

    public init(maxPayloadSize: Int = CompressedPacket.maxPayloadLength, expectedSequenceID: UInt8? = nil) {
        self.maxPayloadSize = min(max(0, maxPayloadSize), CompressedPacket.maxPayloadLength)
        self.expectedSequenceID = expectedSequenceID
    }

    /// Decodes one compressed packet from the front of `buffer`, or returns nil (consuming nothing) until
    /// all of it has arrived.
    public mutating func decode(buffer: inout ByteBuffer) throws -> CompressedPacket? {
        let start = buffer.readerIndex
        guard buffer.readableBytes >= CompressedPacket.headerLength,
            let compressedLength = buffer.getUInt24(at: start),
            let sequenceID = buffer.getInteger(at: start + 3, as: UInt8.self),
            let uncompressedLength = buffer.getUInt24(at: start + 4)
        else { return nil }
        if let expected = expectedSequenceID, sequenceID != expected {
            throw CompressedPacketError(.outOfSequence(expected: expected, got: sequenceID))
        }
        let largest = max(compressedLength, uncompressedLength)
        if largest > maxPayloadSize {
            throw CompressedPacketError(.payloadTooLarge(size: largest, limit: maxPayloadSize))
        }
        guard let body = buffer.getSlice(at: start + CompressedPacket.headerLength, length: compressedLength)
        else { return nil }
        // Uncompressed length 0 means "stored": the payload is the body as it is.
        let payload = try uncompressedLength == 0 ? body : Zlib.inflate(body, declaredLength: uncompressedLength)
        buffer.moveReaderIndex(forwardBy: CompressedPacket.headerLength + compressedLength)
        lastSequenceID = sequenceID
        if expectedSequenceID != nil { expectedSequenceID = sequenceID &+ 1 }
        return CompressedPacket(sequenceID: sequenceID, payload: payload, isDeflated: uncompressedLength != 0)
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> CompressedPacket? {
        if let packet = try decode(buffer: &buffer) { return packet }
        guard buffer.readableBytes > 0 else { return nil }
        let announced = buffer.getUInt24(at: buffer.readerIndex).map { $0 + CompressedPacket.headerLength }
        let missing = (announced ?? CompressedPacket.headerLength) - buffer.readableBytes
        throw CompressedPacketError(.truncated(missing: max(1, missing)))
    }

    /// Decodes every complete compressed packet at the front of `buffer` and returns their payloads
    /// joined: the inner packet stream to feed a `MySQLPacketDecoder` or `PacketStreamScanner`. Returns nil
    /// (consuming nothing) while no whole compressed packet has arrived; a partial packet stays in
    /// `buffer` for the next call. Stops early, leaving the rest in `buffer`, once the inner bytes reach
    /// `maxInnerBytes`, so one read cannot inflate without bound.
    public mutating func decodeStream(_ buffer: inout ByteBuffer, maxInnerBytes: Int = 1 << 24) throws
        -> InnerStream?
    {
        guard let first = try decode(buffer: &buffer) else { return nil }
        var stream = InnerStream(
            bytes: first.payload, firstSequenceID: first.sequenceID, lastSequenceID: first.sequenceID,
            packetCount: 1)
        while stream.bytes.readableBytes < maxInnerBytes, var next = try decode(buffer: &buffer) {
            stream.bytes.writeBuffer(&next.payload)
            stream.lastSequenceID = next.sequenceID
            stream.packetCount += 1
        }
        return stream
    }
}

extension ByteBuffer {
    /// The 3-byte little-endian length at `index`, as every MySQL header stores it.
    func getUInt24(at index: Int) -> Int? {
        guard let low = getInteger(at: index, endianness: .little, as: UInt16.self),
            let high = getInteger(at: index + 2, as: UInt8.self)
        else { return nil }
        return Int(low) | Int(high) << 16
    }

    mutating func writeUInt24(_ value: Int) {
        writeInteger(UInt16(truncatingIfNeeded: value), endianness: .little)
        writeInteger(UInt8(truncatingIfNeeded: value >> 16))
    }
}
