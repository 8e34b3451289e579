public import NIOCore

/// Splits a byte stream into `MySQLPacket`s: reads the 4-byte header (3-byte little-endian length,
/// sequence id), joins `0xFFFFFF`-long continuation chunks (each chunk's sequence id must follow the
/// previous one), and refuses payloads over `maxPayloadSize` as soon as the header announces them.
public struct MySQLPacketDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = MySQLPacket

    public let maxPayloadSize: Int
    /// Whether a continuation chunk's sequence id must follow the previous chunk's. Off for the inner
    /// stream of the compressed protocol, where libmariadb sends every chunk of a long query with id 0
    /// and nobody checks inner ids.
    public var checksContinuationSequence = true
    /// Chunks of a payload still being continued.
    private var pending: ByteBuffer?
    private var pendingSequenceID: UInt8 = 0
    private var lastSequenceID: UInt8 = 0

    public init(maxPayloadSize: Int = 64 * 1024 * 1024) {
        self.maxPayloadSize = maxPayloadSize
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> MySQLPacket? {
        while true {
            guard buffer.readableBytes >= 4,
                let length = buffer.getInteger(at: buffer.readerIndex, endianness: .little, as: UInt16.self),
                let high = buffer.getInteger(at: buffer.readerIndex + 2, as: UInt8.self),
                let sequenceID = buffer.getInteger(at: buffer.readerIndex + 3, as: UInt8.self)
            else { return nil }
            let chunkLength = Int(length) | Int(high) << 16
            let total = (pending?.readableBytes ?? 0) + chunkLength
            if total > maxPayloadSize {
                throw MySQLWireError(.packetTooLarge(size: total, limit: maxPayloadSize))
            }
            if pending != nil, checksContinuationSequence, sequenceID != lastSequenceID &+ 1 {
                throw MySQLWireError(.outOfSequence(expected: lastSequenceID &+ 1, got: sequenceID))
            }
            guard var chunk = buffer.getSlice(at: buffer.readerIndex + 4, length: chunkLength) else { return nil }
            buffer.moveReaderIndex(forwardBy: 4 + chunkLength)
            lastSequenceID = sequenceID
            // `take()` leaves `pending` empty, so appending never copies the accumulated payload.
            var joined = pending.take()
            if joined == nil { pendingSequenceID = sequenceID }
            if joined != nil { joined?.writeBuffer(&chunk) } else { joined = chunk }
            if chunkLength == MySQLPacket.maxChunk {
                pending = joined
                continue
            }
            return MySQLPacket(sequenceID: pendingSequenceID, payload: joined ?? chunk)
        }
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> MySQLPacket? {
        if let packet = try decode(buffer: &buffer) { return packet }
        if buffer.readableBytes > 0 || pending != nil {
            let announced =
                buffer.readableBytes >= 3
                ? Int(buffer.getInteger(at: buffer.readerIndex, endianness: .little, as: UInt16.self) ?? 0)
                    | Int(buffer.getInteger(at: buffer.readerIndex + 2, as: UInt8.self) ?? 0) << 16 + 4
                : 4
            throw MySQLWireError(.truncated(missing: max(1, announced - buffer.readableBytes)))
        }
        return nil
    }
}

/// Writes `MySQLPacket`s, splitting payloads of 16 MiB − 1 bytes or more into continuation chunks with
/// consecutive sequence ids (and an empty last chunk when the payload is an exact multiple).
public struct MySQLPacketEncoder: MessageToByteEncoder {
    public typealias OutboundIn = MySQLPacket

    public init() {}

    public func encode(data: MySQLPacket, out: inout ByteBuffer) throws {
        Self.write(data, into: &out)
    }

    public static func write(_ packet: MySQLPacket, into out: inout ByteBuffer) {
        var payload = packet.payload
        var sequenceID = packet.sequenceID
        while true {
            let length = min(payload.readableBytes, MySQLPacket.maxChunk)
            out.writeInteger(UInt16(truncatingIfNeeded: length), endianness: .little)
            out.writeInteger(UInt8(truncatingIfNeeded: length >> 16))
            out.writeInteger(sequenceID)
            if var chunk = payload.readSlice(length: length) { out.writeBuffer(&chunk) }
            if length < MySQLPacket.maxChunk { return }
            sequenceID &+= 1
        }
    }
}
