import MySQLWire
import NIOCore
import NIOTestUtils
import TestSupport
import Testing

@Suite("Compressed protocol codec")
struct CompressedPacketCodecTests {

    /// `count` bytes that deflate well (words from a small vocabulary) or not at all (random).
    static func payload(_ count: Int, compressible: Bool, _ generator: inout SplitMix64) -> [UInt8] {
        if !compressible { return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) } }
        let words = ["alpha ", "beta ", "gamma ", "delta ", "row ", "42 ", "NULL "].map { Array($0.utf8) }
        var bytes: [UInt8] = []
        while bytes.count < count { bytes += words[Int.random(in: 0..<words.count, using: &generator)] }
        return Array(bytes.prefix(count))
    }

    /// Ordinary packets framed back to back, as the inner stream of a compressed connection.
    static func innerStream(_ packets: [MySQLPacket]) -> ByteBuffer {
        var out = ByteBuffer()
        for packet in packets { MySQLPacketEncoder.write(packet, into: &out) }
        return out
    }

    static func innerPackets(_ stream: ByteBuffer) throws -> [MySQLPacket] {
        var decoder = MySQLPacketDecoder()
        var buffer = stream
        var packets: [MySQLPacket] = []
        while let packet = try decoder.decode(buffer: &buffer) { packets.append(packet) }
        #expect(buffer.readableBytes == 0)
        return packets
    }

    static func decodeAll(_ input: ByteBuffer, decoder: CompressedPacketDecoder = .init()) throws -> [CompressedPacket]
    {
        var decoder = decoder
        var buffer = input
        var packets: [CompressedPacket] = []
        while let packet = try decoder.decode(buffer: &buffer) { packets.append(packet) }
        #expect(try decoder.decodeLast(buffer: &buffer, seenEOF: true) == nil)
        return packets
    }

    /// One hand-made compressed packet: `body` as sent, with the header fields given.
    static func rawPacket(_ body: [UInt8], sequenceID: UInt8, uncompressedLength: Int) -> ByteBuffer {
        var out = ByteBuffer()
        out.writeBytes([UInt8(body.count & 0xFF), UInt8(body.count >> 8 & 0xFF), UInt8(body.count >> 16)])
        out.writeInteger(sequenceID)
        out.writeBytes([
            UInt8(uncompressedLength & 0xFF), UInt8(uncompressedLength >> 8 & 0xFF), UInt8(uncompressedLength >> 16),
        ])
        out.writeBytes(body)
        return out
    }

    /// zlib-format deflate of `bytes`, through the encoder (a lone packet long enough to be deflated).
    static func deflated(_ bytes: [UInt8]) throws -> [UInt8] {
        var out = ByteBuffer()
        CompressedPacketEncoder(minimumCompressLength: 1).encode(ByteBuffer(bytes: bytes), sequenceID: 0, into: &out)
        #expect(out.getBytes(at: 4, length: 3) != [0, 0, 0], "the payload was stored, not deflated")
        return Array(out.readableBytesView.dropFirst(7))
    }

    @Test("many inner packets round-trip, whole or cut across compressed packets of any size")
    func roundTripManyPackets() throws {
        var generator = SplitMix64(state: 11)
        var packets: [MySQLPacket] = []
        for index in 0..<600 {
            let size = [0, 1, 3, 49, 50, 51, 200, 1500, 9000][index % 9] + Int.random(in: 0...20, using: &generator)
            let bytes = Self.payload(size, compressible: index % 3 != 0, &generator)
            packets.append(MySQLPacket(sequenceID: UInt8(truncatingIfNeeded: index), payload: ByteBuffer(bytes: bytes)))
        }
        let inner = Self.innerStream(packets)
        for maxPayloadLength in [CompressedPacket.maxPayloadLength, 16384, 1000, 7] {
            let encoder = CompressedPacketEncoder(maxPayloadLength: maxPayloadLength)
            var wire = ByteBuffer()
            let next = encoder.encode(inner, sequenceID: 0, into: &wire)
            let expectedCount = (inner.readableBytes + maxPayloadLength - 1) / maxPayloadLength
            #expect(Int(next) == expectedCount % 256)

            var decoder = CompressedPacketDecoder(expectedSequenceID: 0)
            var input = wire
            let stream = try #require(try decoder.decodeStream(&input, maxInnerBytes: .max))
            #expect(input.readableBytes == 0)
            #expect(stream.packetCount == expectedCount)
            #expect(stream.firstSequenceID == 0)
            #expect(stream.lastSequenceID == next &- 1)
            #expect(stream.bytes == inner)
            #expect(try Self.innerPackets(stream.bytes) == packets)
        }
    }

    @Test("a 20 MiB inner packet travels as continuation chunks inside two compressed packets")
    func twentyMiBPacket() throws {
        let size = 20 * 1024 * 1024
        var payload = ByteBuffer(repeating: 0x61, count: size)
        for offset in [0, 1, MySQLPacket.maxChunk - 5, MySQLPacket.maxChunk, MySQLPacket.maxChunk + 3, size - 1] {
            payload.setInteger(UInt8(truncatingIfNeeded: offset % 251 + 1), at: offset)
        }
        let inner = Self.innerStream([MySQLPacket(sequenceID: 0, payload: payload)])
        #expect(inner.readableBytes == size + 8)  // two ordinary chunks: 16 MiB - 1, then the rest

        var wire = ByteBuffer()
        let next = CompressedPacketEncoder().encode(inner, sequenceID: 0, into: &wire)
        #expect(next == 2)
        // First compressed packet: id 0, exactly 16 MiB - 1 inflated bytes; the second carries the rest.
        #expect(wire.getInteger(at: 3, as: UInt8.self) == 0)
        #expect(wire.getBytes(at: 4, length: 3) == [0xFF, 0xFF, 0xFF])
        #expect(wire.readableBytes < 200_000)

        let packets = try Self.decodeAll(wire)
        #expect(packets.map(\.sequenceID) == [0, 1])
        #expect(packets.map(\.payload.readableBytes) == [CompressedPacket.maxPayloadLength, size + 8 - 0xFF_FFFF])
        #expect(packets.allSatisfy { $0.isDeflated })
        var joined = packets[0].payload
        joined.writeImmutableBuffer(packets[1].payload)
        let decoded = try Self.innerPackets(joined)
        #expect(decoded.count == 1)
        #expect(decoded.first?.payload == payload)
        #expect(decoded.first?.nextSequenceID == 2)
    }

    @Test("the decoder passes NIO's verifier: byte-by-byte drip, all at once, and leftovers")
    func verifier() throws {
        var generator = SplitMix64(state: 12)
        var pairs: [(ByteBuffer, [CompressedPacket])] = []
        for (index, size) in [1, 49, 50, 300, 4000, 20].enumerated() {
            let payload = ByteBuffer(bytes: Self.payload(size, compressible: index != 3, &generator))
            var wire = ByteBuffer()
            CompressedPacketEncoder().encode(payload, sequenceID: UInt8(index), into: &wire)
            let deflated = wire.getBytes(at: 4, length: 3) != [0, 0, 0]
            pairs.append((wire, [CompressedPacket(sequenceID: UInt8(index), payload: payload, isDeflated: deflated)]))
        }
        let deflated = pairs.map { $0.1[0].isDeflated }
        #expect(
            [deflated[0], deflated[1], deflated[3], deflated[4], deflated[5]] == [false, false, false, true, false])
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) { CompressedPacketDecoder() }
    }

    @Test("a compressed stream fed one byte at a time yields the same inner stream")
    func dripFeed() throws {
        var generator = SplitMix64(state: 13)
        var packets: [MySQLPacket] = []
        for index in 0..<40 {
            let bytes = Self.payload(index * 37 % 700, compressible: index % 4 != 0, &generator)
            packets.append(MySQLPacket(sequenceID: 1, payload: ByteBuffer(bytes: bytes)))
        }
        let inner = Self.innerStream(packets)
        var wire = ByteBuffer()
        let next = CompressedPacketEncoder(maxPayloadLength: 512).encode(inner, sequenceID: 1, into: &wire)

        var decoder = CompressedPacketDecoder(expectedSequenceID: 1)
        var pending = ByteBuffer()
        var output = ByteBuffer()
        var lastSequenceID: UInt8?
        for byte in wire.readableBytesView {
            pending.writeInteger(byte)
            if let stream = try decoder.decodeStream(&pending) {
                output.writeImmutableBuffer(stream.bytes)
                lastSequenceID = stream.lastSequenceID
                #expect(stream.packetCount == 1)
            }
        }
        #expect(pending.readableBytes == 0)
        #expect(try decoder.decodeLast(buffer: &pending, seenEOF: true) == nil)
        #expect(output == inner)
        #expect(lastSequenceID == next &- 1)
        #expect(decoder.lastSequenceID == lastSequenceID)
        #expect(decoder.expectedSequenceID == next)
    }

    @Test("short and incompressible payloads are stored with uncompressed length 0")
    func storedPayloads() throws {
        var generator = SplitMix64(state: 14)
        let short = ByteBuffer(bytes: Array(repeating: 0x41, count: 49))
        let random = ByteBuffer(bytes: Self.payload(3000, compressible: false, &generator))
        let text = ByteBuffer(bytes: Self.payload(3000, compressible: true, &generator))
        for (payload, stored) in [(short, true), (random, true), (text, false)] {
            var wire = ByteBuffer()
            #expect(CompressedPacketEncoder().encode(payload, sequenceID: 9, into: &wire) == 10)
            let header = try #require(wire.getBytes(at: 0, length: 7))
            #expect(header[3] == 9)
            if stored {
                #expect(header[4...6] == [0, 0, 0])
                #expect(wire.readableBytes == 7 + payload.readableBytes)
                #expect(wire.getSlice(at: 7, length: payload.readableBytes) == payload)
            } else {
                #expect(Int(header[4]) | Int(header[5]) << 8 | Int(header[6]) << 16 == payload.readableBytes)
                #expect(wire.readableBytes < payload.readableBytes / 2)
                #expect(wire.getBytes(at: 7, length: 1) == [0x78])  // zlib header, not raw deflate or gzip
            }
            let packets = try Self.decodeAll(wire)
            #expect(packets == [CompressedPacket(sequenceID: 9, payload: payload, isDeflated: !stored)])
        }
        // libmariadb's threshold: 150 bytes.
        var wire = ByteBuffer()
        CompressedPacketEncoder(minimumCompressLength: 150).encode(
            text.getSlice(at: 0, length: 149)!, sequenceID: 0, into: &wire)
        #expect(wire.getBytes(at: 4, length: 3) == [0, 0, 0])
        var empty = ByteBuffer()
        #expect(CompressedPacketEncoder().encode(ByteBuffer(), sequenceID: 3, into: &empty) == 3)
        #expect(empty.readableBytes == 0)
    }

    @Test("sequence ids wrap from 255 to 0 on both sides")
    func sequenceWraparound() throws {
        let inner = ByteBuffer(bytes: Array(repeating: 0x7A, count: 400))
        var wire = ByteBuffer()
        let next = CompressedPacketEncoder(maxPayloadLength: 100).encode(inner, sequenceID: 254, into: &wire)
        #expect(next == 2)
        let packets = try Self.decodeAll(wire, decoder: CompressedPacketDecoder(expectedSequenceID: 254))
        #expect(packets.map(\.sequenceID) == [254, 255, 0, 1])
        var input = wire
        var decoder = CompressedPacketDecoder()
        let stream = try #require(try decoder.decodeStream(&input))
        #expect((stream.firstSequenceID, stream.lastSequenceID, stream.packetCount) == (254, 1, 4))
        #expect(stream.bytes == inner)
    }

    @Test("decodeStream stops once maxInnerBytes is reached and leaves the rest for the next call")
    func boundedStream() throws {
        let inner = ByteBuffer(bytes: Array(repeating: 0x30, count: 10_000))
        var wire = ByteBuffer()
        CompressedPacketEncoder(maxPayloadLength: 1000).encode(inner, sequenceID: 0, into: &wire)
        var decoder = CompressedPacketDecoder()
        var output = ByteBuffer()
        var calls = 0
        while let stream = try decoder.decodeStream(&wire, maxInnerBytes: 2500) {
            #expect(stream.packetCount == (calls < 3 ? 3 : 1))  // ten packets: 3 + 3 + 3 + 1
            #expect(stream.firstSequenceID == UInt8(calls * 3))
            output.writeImmutableBuffer(stream.bytes)
            calls += 1
        }
        #expect(calls == 4)
        #expect(output == inner)
    }
}

@Suite("Compressed protocol codec: malformed input")
struct CompressedPacketMalformedTests {
    typealias Codec = CompressedPacketCodecTests

    static func decodeError(_ input: ByteBuffer, decoder: CompressedPacketDecoder = .init()) -> CompressedPacketError? {
        var decoder = decoder
        var buffer = input
        do {
            while try decoder.decode(buffer: &buffer) != nil {}
            _ = try decoder.decodeLast(buffer: &buffer, seenEOF: true)
            return nil
        } catch let error as CompressedPacketError {
            return error
        } catch {
            Issue.record("unexpected error \(error)")
            return nil
        }
    }

    static let text = Array(String(repeating: "a compressible row of text, ", count: 8).utf8)

    @Test("a payload that inflates to fewer bytes than declared is refused")
    func declaredTooLong() throws {
        let body = try Codec.deflated(Self.text)
        let wire = Codec.rawPacket(body, sequenceID: 0, uncompressedLength: Self.text.count + 20)
        #expect(
            Self.decodeError(wire)
                == CompressedPacketError(.inflatedTooShort(declared: Self.text.count + 20, actual: Self.text.count)))
    }

    @Test("a payload that inflates to more bytes than declared is refused, inflating one byte past the declared length")
    func declaredTooShort() throws {
        let body = try Codec.deflated(Self.text)
        for declared in [1, Self.text.count - 1] {
            let wire = Codec.rawPacket(body, sequenceID: 0, uncompressedLength: declared)
            #expect(Self.decodeError(wire) == CompressedPacketError(.inflatedTooLong(declared: declared)))
        }
    }

    @Test("a zlib bomb is stopped at the declared length or refused at the header by the limit")
    func zipBomb() throws {
        // 16 MiB - 1 zero bytes deflate to about 16 KiB.
        let bomb = try Codec.deflated(Array(repeating: 0, count: CompressedPacket.maxPayloadLength))
        #expect(bomb.count < 20_000)
        #expect(
            Self.decodeError(Codec.rawPacket(bomb, sequenceID: 0, uncompressedLength: 1000))
                == CompressedPacketError(.inflatedTooLong(declared: 1000)))
        // Declaring the real size does not help once the limit is lower: refused from the header alone.
        var header = Codec.rawPacket(bomb, sequenceID: 0, uncompressedLength: CompressedPacket.maxPayloadLength)
        header.moveWriterIndex(to: header.readerIndex + 7)
        #expect(
            Self.decodeError(header, decoder: CompressedPacketDecoder(maxPayloadSize: 1 << 20))
                == CompressedPacketError(.payloadTooLarge(size: CompressedPacket.maxPayloadLength, limit: 1 << 20)))
        // The same limit holds for stored payloads and for the length as sent.
        var stored = Codec.rawPacket([], sequenceID: 0, uncompressedLength: 0)
        stored.setBytes([0x01, 0x00, 0x10], at: 0)  // 1 MiB + 1 announced
        #expect(
            Self.decodeError(stored, decoder: CompressedPacketDecoder(maxPayloadSize: 1 << 20))
                == CompressedPacketError(.payloadTooLarge(size: (1 << 20) + 1, limit: 1 << 20)))
    }

    @Test("a connection closed inside a compressed packet's header or payload is reported as truncated")
    func truncated() throws {
        var wire = ByteBuffer()
        CompressedPacketEncoder().encode(ByteBuffer(bytes: Self.text), sequenceID: 0, into: &wire)
        let total = wire.readableBytes
        for keep in [1, 6, 7, 8, total - 1] {
            let cut = try #require(wire.getSlice(at: 0, length: keep))
            let missing = keep < 3 ? 7 - keep : total - keep
            #expect(Self.decodeError(cut) == CompressedPacketError(.truncated(missing: missing)), "kept \(keep)")
        }
    }

    @Test("corrupt zlib data is refused with zlib's status")
    func corruptData() throws {
        let body = try Codec.deflated(Self.text)
        var cases: [[UInt8]] = []
        var badHeader = body
        badHeader[0] = 0x00  // not a zlib header
        cases.append(badHeader)
        var badChecksum = body
        badChecksum[badChecksum.count - 1] ^= 0xFF  // Adler-32 mismatch
        cases.append(badChecksum)
        cases.append(Array(body.dropFirst(2)))  // raw deflate, no zlib header
        cases.append(Array(body.prefix(body.count / 2)))  // stream cut short
        cases.append([])  // nothing at all
        for bytes in cases {
            let error = Self.decodeError(Codec.rawPacket(bytes, sequenceID: 0, uncompressedLength: Self.text.count))
            guard case .corruptData = error?.kind else {
                Issue.record("expected corrupt data, got \(String(describing: error))")
                continue
            }
            #expect(error?.serverErrno == 1157)
        }
    }

    @Test("bytes after the end of the zlib stream are refused")
    func trailingBytes() throws {
        let body = try Codec.deflated(Self.text) + [1, 2, 3]
        #expect(
            Self.decodeError(Codec.rawPacket(body, sequenceID: 0, uncompressedLength: Self.text.count))
                == CompressedPacketError(.trailingBytes(count: 3)))
    }

    @Test("with an expected sequence id, a compressed packet out of order is refused at its header")
    func outOfSequence() throws {
        var wire = ByteBuffer()
        CompressedPacketEncoder(maxPayloadLength: 10).encode(ByteBuffer(bytes: Self.text), sequenceID: 5, into: &wire)
        #expect(
            Self.decodeError(wire, decoder: CompressedPacketDecoder(expectedSequenceID: 0))
                == CompressedPacketError(.outOfSequence(expected: 0, got: 5)))
        #expect(Self.decodeError(wire, decoder: CompressedPacketDecoder(expectedSequenceID: 5)) == nil)
        #expect(Self.decodeError(wire) == nil)  // unchecked, as libmariadb reads
        // A gap inside the stream: packet 7 dropped.
        let first = try #require(wire.getSlice(at: 0, length: 2 * 17))
        let rest = try #require(wire.getSlice(at: 3 * 17, length: wire.readableBytes - 3 * 17))
        var gapped = first
        gapped.writeImmutableBuffer(rest)
        #expect(
            Self.decodeError(gapped, decoder: CompressedPacketDecoder(expectedSequenceID: 5))
                == CompressedPacketError(.outOfSequence(expected: 7, got: 8)))
    }

    @Test("random and mutated compressed streams either decode or throw CompressedPacketError")
    func randomInput() throws {
        var generator = SplitMix64(state: 15)
        var valid = ByteBuffer()
        CompressedPacketEncoder(maxPayloadLength: 200).encode(
            ByteBuffer(bytes: Codec.payload(1000, compressible: true, &generator)), sequenceID: 0, into: &valid)
        let validBytes = Array(valid.readableBytesView)
        for round in 0..<4000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<Int.random(in: 0...300, using: &generator)).map { _ in
                    UInt8.random(in: 0...255, using: &generator)
                }
            } else {
                bytes = validBytes
                for _ in 0..<Int.random(in: 1...4, using: &generator) {
                    bytes[Int.random(in: 0..<bytes.count, using: &generator)] ^= UInt8.random(
                        in: 1...255, using: &generator)
                }
                bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &generator)))
            }
            var decoder = CompressedPacketDecoder(maxPayloadSize: 1 << 16)
            var buffer = ByteBuffer(bytes: bytes)
            do {
                while try decoder.decodeStream(&buffer) != nil {}
                _ = try decoder.decodeLast(buffer: &buffer, seenEOF: true)
            } catch {
                #expect(error is CompressedPacketError)
            }
        }
    }
}
