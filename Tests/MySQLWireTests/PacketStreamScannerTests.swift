import MySQLWire
import NIOCore
import Testing

@Suite struct PacketStreamScannerTests {
    private func packet(_ sequenceID: UInt8, _ payload: [UInt8]) -> [UInt8] {
        var out = ByteBuffer()
        MySQLPacketEncoder.write(MySQLPacket(sequenceID: sequenceID, payload: ByteBuffer(bytes: payload)), into: &out)
        return Array(out.readableBytesView)
    }

    /// Feeds `stream` in pieces of `step` bytes the way a relay does (held-back bytes first); returns the
    /// forwarded bytes and the packets seen.
    private func relay(_ stream: [UInt8], step: Int) -> ([UInt8], [(UInt8, Int, Bool, UInt8?)]) {
        var scanner = PacketStreamScanner()
        var held = ByteBuffer()
        var forwarded: [UInt8] = []
        var seen: [(UInt8, Int, Bool, UInt8?)] = []
        var offset = 0
        while offset < stream.count {
            let piece = stream[offset..<min(stream.count, offset + step)]
            offset += step
            held.writeBytes(piece)
            let buffer = held
            let count = scanner.scan(buffer) { start in
                seen.append(
                    (
                        start.sequenceID, start.length, start.isContinuation,
                        start.length > 0 ? buffer.getInteger(at: start.payloadIndex) : nil
                    ))
                return true
            }
            forwarded += held.readBytes(length: count) ?? []
            held.discardReadBytes()
        }
        return (forwarded, seen)
    }

    @Test("Every byte passes through unchanged and every packet is seen once, whatever the read sizes")
    func dripAndBatches() {
        let stream =
            packet(1, [0x01]) + packet(2, Array(repeating: 0xAB, count: 300)) + packet(3, [])
            + packet(4, [0xFE, 0, 0, 2, 0])
        for step in [1, 2, 3, 5, 64, 10_000] {
            let (forwarded, seen) = relay(stream, step: step)
            #expect(forwarded == stream, "step \(step)")
            #expect(seen.map(\.0) == [1, 2, 3, 4], "step \(step)")
            #expect(seen.map(\.1) == [1, 300, 0, 5])
            #expect(seen.map(\.3) == [0x01, 0xAB, nil, 0xFE])
        }
    }

    @Test("A packet of 16 MiB or more is seen as its first chunk; later chunks are marked as continuations")
    func continuation() {
        let payload = [UInt8](repeating: 7, count: MySQLPacket.maxChunk + 10)
        let stream = packet(1, payload) + packet(3, [0x00])
        let (forwarded, seen) = relay(stream, step: 1 << 20)
        #expect(forwarded == stream)
        #expect(seen.map(\.1) == [MySQLPacket.maxChunk, 10, 1])
        #expect(seen.map(\.2) == [false, true, false])
    }

    @Test("A large packet is forwarded as it arrives, not held until complete")
    func streamsLargePackets() {
        var scanner = PacketStreamScanner()
        let stream = packet(1, [UInt8](repeating: 1, count: 100_000))
        let first = ByteBuffer(bytes: stream[0..<50_000])
        #expect(scanner.scan(first) { _ in true } == 50_000)
        #expect(!scanner.atPacketBoundary)
        let rest = ByteBuffer(bytes: stream[50_000...])
        #expect(scanner.scan(rest) { _ in true } == stream.count - 50_000)
        #expect(scanner.atPacketBoundary)
    }
}
