public import NIOCore

/// Walks a stream of MySQL packets in place, so a relay can forward the bytes unchanged (no copy, no
/// re-framing) while still seeing where every packet starts. Large packets are not held: as soon as a
/// packet's header and its first `prefixLength` bytes are present, the scanner reports it and lets the
/// rest of the packet pass through as it arrives, so a 16 MiB row streams with flat memory.
public struct PacketStreamScanner: Sendable {
    /// One packet (or the first chunk of a packet split into 16 MiB chunks) seen in the stream.
    public struct PacketStart: Sendable {
        public var sequenceID: UInt8
        /// The chunk's payload length as the header says.
        public var length: Int
        /// Absolute index of the payload's first byte in the scanned buffer.
        public var payloadIndex: Int
        /// True for the second and later chunks of a packet of 16 MiB or more.
        public var isContinuation: Bool
    }

    public let prefixLength: Int
    /// Payload bytes of the current packet not seen yet.
    private var remaining = 0
    /// The packet being passed through is a full-size chunk, so the next one continues it.
    private var continuing = false

    public init(prefixLength: Int = ResponseTracker.prefixLength) {
        self.prefixLength = prefixLength
    }

    /// True between packets: no packet is partly through.
    public var atPacketBoundary: Bool { remaining == 0 && !continuing }

    /// Scans `buffer` from its reader index, calling `onPacket` for every packet whose header and
    /// prefix are present. Returns how many bytes from the reader index may be forwarded now; the rest
    /// (an incomplete header or prefix) must be kept and scanned again with the bytes that follow.
    /// `onPacket` may stop the scan early by returning false; the count then ends after that packet's
    /// header and prefix are accounted for up to the packet's end or the buffer's end.
    public mutating func scan(_ buffer: ByteBuffer, onPacket: (PacketStart) throws -> Bool) rethrows -> Int {
        let start = buffer.readerIndex
        let end = buffer.writerIndex
        var position = start
        while position < end {
            if remaining > 0 {
                let step = min(remaining, end - position)
                position += step
                remaining -= step
                continue
            }
            guard end - position >= 4,
                let low = buffer.getInteger(at: position, endianness: .little, as: UInt16.self),
                let high = buffer.getInteger(at: position + 2, as: UInt8.self),
                let sequenceID = buffer.getInteger(at: position + 3, as: UInt8.self)
            else { break }
            let length = Int(low) | Int(high) << 16
            guard end - position - 4 >= min(length, prefixLength) else { break }
            let packet = PacketStart(
                sequenceID: sequenceID, length: length, payloadIndex: position + 4, isContinuation: continuing)
            continuing = length == MySQLPacket.maxChunk
            position += 4
            remaining = length
            if try !onPacket(packet) {
                let step = min(remaining, end - position)
                position += step
                remaining -= step
                break
            }
        }
        return position - start
    }
}
