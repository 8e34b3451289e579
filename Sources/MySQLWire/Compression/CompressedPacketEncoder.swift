public import NIOCore

/// Writes the compressed protocol: wraps a piece of the ordinary packet stream into compressed packets
/// of at most ``CompressedPacket/maxPayloadLength`` inflated bytes each, numbered from a given sequence
/// id. A piece shorter than `minimumCompressLength`, or one that deflating does not shrink, is stored
/// (uncompressed length 0), as MariaDB does.
///
/// The inner stream is cut by length only: an ordinary packet may straddle two compressed packets, and
/// one compressed packet may carry many ordinary packets; readers reassemble either way.
public struct CompressedPacketEncoder: Sendable {
    /// zlib level, -1 (zlib's default, 6) or 0 ... 9.
    public let level: Int
    /// Pieces shorter than this are stored rather than deflated. MariaDB's server uses 50, libmariadb 150.
    public let minimumCompressLength: Int
    /// Most inflated bytes per compressed packet.
    public let maxPayloadLength: Int

    public init(
        level: Int = -1, minimumCompressLength: Int = CompressedPacket.defaultMinimumCompressLength,
        maxPayloadLength: Int = CompressedPacket.maxPayloadLength
    ) {
        self.level = min(max(-1, level), 9)
        self.minimumCompressLength = max(0, minimumCompressLength)
        self.maxPayloadLength = min(max(1, maxPayloadLength), CompressedPacket.maxPayloadLength)
    }

    /// Appends `inner` to `out` as compressed packets numbered from `sequenceID` and returns the sequence
    /// id the next compressed packet of the exchange must carry. An empty `inner` writes nothing.
    @discardableResult
    public func encode(_ inner: ByteBuffer, sequenceID: UInt8, into out: inout ByteBuffer) -> UInt8 {
        var rest = inner
        var next = sequenceID
        while rest.readableBytes > 0, let piece = rest.readSlice(length: min(rest.readableBytes, maxPayloadLength)) {
            write(piece, sequenceID: next, into: &out)
            next &+= 1
        }
        return next
    }

    /// Appends one compressed packet carrying `payload` (at most `maxPayloadLength` bytes).
    private func write(_ payload: ByteBuffer, sequenceID: UInt8, into out: inout ByteBuffer) {
        let headerIndex = out.writerIndex
        out.writeRepeatingByte(0, count: CompressedPacket.headerLength)
        var deflatedLength: Int?
        if payload.readableBytes >= max(1, minimumCompressLength) {
            deflatedLength = Zlib.deflate(payload, level: Int32(level), into: &out)
        }
        var header = ByteBuffer()
        if let deflatedLength {
            header.writeUInt24(deflatedLength)
            header.writeInteger(sequenceID)
            header.writeUInt24(payload.readableBytes)
        } else {
            var stored = payload
            out.writeBuffer(&stored)
            header.writeUInt24(payload.readableBytes)
            header.writeInteger(sequenceID)
            header.writeUInt24(0)
        }
        out.setBuffer(header, at: headerIndex)
    }
}
