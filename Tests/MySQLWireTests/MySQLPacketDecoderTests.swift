import MySQLWire
import NIOCore
import NIOTestUtils
import Testing

@Suite("MySQL packet framing")
struct MySQLPacketDecoderTests {
    static func frame(_ payload: [UInt8], sequenceID: UInt8) -> ByteBuffer {
        var out = ByteBuffer()
        MySQLPacketEncoder.write(MySQLPacket(sequenceID: sequenceID, payload: ByteBuffer(bytes: payload)), into: &out)
        return out
    }

    static func decodeAll(_ input: ByteBuffer, maxPayloadSize: Int = 1 << 26) throws -> [MySQLPacket] {
        var decoder = MySQLPacketDecoder(maxPayloadSize: maxPayloadSize)
        var buffer = input
        var packets: [MySQLPacket] = []
        while let packet = try decoder.decode(buffer: &buffer) { packets.append(packet) }
        return packets
    }

    @Test("several packets in one buffer come out in order with their sequence ids")
    func manyPacketsInOneBuffer() throws {
        var input = Self.frame([0x03] + Array("SELECT 1".utf8), sequenceID: 0)
        var second = Self.frame([0x0E], sequenceID: 0)
        var third = Self.frame([], sequenceID: 7)
        input.writeBuffer(&second)
        input.writeBuffer(&third)
        let packets = try Self.decodeAll(input)
        #expect(packets.map(\.sequenceID) == [0, 0, 7])
        #expect(packets.map(\.payload.readableBytes) == [9, 1, 0])
    }

    @Test("the decoder passes NIO's verifier: byte-by-byte drip, all at once, and leftovers")
    func verifier() throws {
        let payloads: [[UInt8]] = [[0x01], Array(repeating: 0xAB, count: 300), [], Array("hello".utf8)]
        var input = ByteBuffer()
        var expected: [(ByteBuffer, [MySQLPacket])] = []
        for (index, payload) in payloads.enumerated() {
            let framed = Self.frame(payload, sequenceID: UInt8(index))
            expected.append((framed, [MySQLPacket(sequenceID: UInt8(index), payload: ByteBuffer(bytes: payload))]))
            var copy = framed
            input.writeBuffer(&copy)
        }
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: expected) { MySQLPacketDecoder() }
    }

    @Test("a payload of 16 MiB or more is split into continuation chunks and joined again")
    func continuationPackets() throws {
        for size in [
            MySQLPacket.maxChunk - 1, MySQLPacket.maxChunk, MySQLPacket.maxChunk + 10, 2 * MySQLPacket.maxChunk,
        ] {
            var payload = ByteBuffer(repeating: 0x61, count: size)
            // Markers at both ends and around the chunk boundary catch lost or shuffled bytes.
            for offset in [0, size / 2, size - 1, MySQLPacket.maxChunk - 2, MySQLPacket.maxChunk] where offset < size {
                payload.setInteger(UInt8(truncatingIfNeeded: offset % 251 + 1), at: offset)
            }
            var framed = ByteBuffer()
            MySQLPacketEncoder.write(MySQLPacket(sequenceID: 5, payload: payload), into: &framed)
            let chunks = size / MySQLPacket.maxChunk + 1
            #expect(framed.readableBytes == size + 4 * chunks)
            let packets = try Self.decodeAll(framed)
            #expect(packets.count == 1)
            #expect(packets.first?.sequenceID == 5)
            #expect(packets.first?.payload == payload)
            #expect(packets.first?.nextSequenceID == 5 &+ UInt8(chunks))
        }
    }

    @Test("a packet larger than the limit is refused as soon as its header arrives")
    func oversize() throws {
        var header = ByteBuffer()
        header.writeBytes([0x00, 0x00, 0x10, 0x00])  // 1 MiB announced, no payload yet
        #expect(throws: MySQLWireError(.packetTooLarge(size: 1 << 20, limit: 1000))) {
            _ = try Self.decodeAll(header, maxPayloadSize: 1000)
        }
    }

    @Test("a continuation chunk out of sequence is refused")
    func badContinuationSequence() throws {
        var input = ByteBuffer()
        input.writeBytes([0xFF, 0xFF, 0xFF, 0x01])
        input.writeRepeatingByte(0x41, count: MySQLPacket.maxChunk)
        input.writeBytes([0x01, 0x00, 0x00, 0x05, 0x42])  // should be sequence id 2
        #expect(throws: MySQLWireError(.outOfSequence(expected: 2, got: 5))) { _ = try Self.decodeAll(input) }
    }

    @Test("a connection closed mid-packet is reported as truncated")
    func truncatedAtEOF() throws {
        var decoder = MySQLPacketDecoder()
        var buffer = ByteBuffer(bytes: [0x05, 0x00, 0x00, 0x00, 0x03, 0x41])
        #expect(try decoder.decode(buffer: &buffer) == nil)
        #expect(throws: MySQLWireError.self) { _ = try decoder.decodeLast(buffer: &buffer, seenEOF: true) }
    }
}
