import MySQLWire
import NIOCore
import Testing

/// The codec against bytes libmariadb and a MariaDB 10.11 server really exchanged (`CompressedCapture`).
@Suite("Compressed protocol: captured MariaDB traffic")
struct CompressedCaptureTests {
    typealias Codec = CompressedPacketCodecTests

    static func inflate(_ wire: ByteBuffer, expecting sequenceIDs: [UInt8]) throws -> ByteBuffer {
        var decoder = CompressedPacketDecoder(expectedSequenceID: sequenceIDs.first)
        var input = wire
        var inner = ByteBuffer()
        var seen: [UInt8] = []
        while let packet = try decoder.decode(buffer: &input) {
            seen.append(packet.sequenceID)
            inner.writeImmutableBuffer(packet.payload)
            if seen.count < sequenceIDs.count { decoder.expectedSequenceID = sequenceIDs[seen.count] }
        }
        #expect(input.readableBytes == 0)
        #expect(seen == sequenceIDs)
        return inner
    }

    @Test("the server's deflated result set decodes to the ordinary packets of SELECT 1")
    func selectOne() throws {
        let command = try Codec.innerPackets(try Self.inflate(CompressedCapture.selectOneCommand, expecting: [0]))
        #expect(command == [MySQLPacket(sequenceID: 0, payload: ByteBuffer(bytes: [0x03] + Array("SELECT 1".utf8)))])

        var decoder = CompressedPacketDecoder()
        var wire = CompressedCapture.selectOneResponse
        let packet = try #require(try decoder.decode(buffer: &wire))
        #expect(packet.isDeflated)
        #expect(packet.sequenceID == 1)
        let response = try Codec.innerPackets(packet.payload)
        #expect(response.map(\.sequenceID) == [1, 2, 3, 4, 5])
        // One column; then 1: metadata follows (the client asked for MariaDB's metadata caching).
        #expect(response[0].payload == ByteBuffer(bytes: [0x01, 0x01]))
        #expect(response[3].payload == ByteBuffer(bytes: [0x01, 0x31]))  // the row "1"
        #expect(response[2].payload.getInteger(at: 0, as: UInt8.self) == 0xFE)  // EOF
    }

    @Test("our encoder writes the client's commands byte for byte as libmariadb did")
    func clientCommandsMatch() throws {
        for captured in [
            CompressedCapture.selectOneCommand, CompressedCapture.repeatCommand, CompressedCapture.quitCommand,
            CompressedCapture.loadDataCommand,
        ] {
            let inner = try Self.inflate(captured, expecting: [0])
            var wire = ByteBuffer()
            let next = CompressedPacketEncoder(minimumCompressLength: 150).encode(inner, sequenceID: 0, into: &wire)
            #expect(next == 1)
            #expect(wire == captured)
        }
    }

    @Test("our encoder deflates the server's responses byte for byte as the server did (same zlib, level 6)")
    func serverResponsesMatch() throws {
        for captured in [CompressedCapture.selectOneResponse, CompressedCapture.repeatResponse] {
            let inner = try Self.inflate(captured, expecting: [1])
            var wire = ByteBuffer()
            #expect(CompressedPacketEncoder().encode(inner, sequenceID: 1, into: &wire) == 2)
            #expect(wire == captured)
        }
        let rows = try Codec.innerPackets(try Self.inflate(CompressedCapture.repeatResponse, expecting: [1]))
        #expect(rows.count == 5)
        #expect(rows[3].payload == ByteBuffer(bytes: [120] + Array(String(repeating: "ab", count: 60).utf8)))
    }

    @Test("a 100 KB row spans the server's compressed packets 1, 2 and 3; inner ids run on regardless")
    func rowAcrossCompressedPackets() throws {
        var decoder = CompressedPacketDecoder(expectedSequenceID: 1)
        var wire = CompressedCapture.bigRowResponse
        let stream = try #require(try decoder.decodeStream(&wire))
        #expect(wire.readableBytes == 0)
        #expect((stream.firstSequenceID, stream.lastSequenceID, stream.packetCount) == (1, 3, 3))
        #expect(stream.bytes.readableBytes == 16384 + 83730 + 9)
        let packets = try Codec.innerPackets(stream.bytes)
        #expect(packets.map(\.sequenceID) == [1, 2, 3, 4, 5, 6])
        let row = packets[4].payload
        #expect(row.readableBytes == 100_011)
        #expect(row.getBytes(at: 0, length: 1) == [6])  // "100000"
        #expect(row.getString(at: row.readableBytes - 4, length: 4) == "xyxy")
        // The proxy's next compressed id, had this been a multi-packet exchange: the last one plus one.
        #expect(decoder.expectedSequenceID == 4)
    }

    @Test("LOAD DATA LOCAL: compressed ids run through the whole exchange, inner ids do not follow them")
    func loadDataLocal() throws {
        // Client command: compressed 0. Server file request: compressed 1, inner 1.
        let request = try Codec.innerPackets(try Self.inflate(CompressedCapture.loadDataFileRequest, expecting: [1]))
        #expect(request.map(\.sequenceID) == [1])
        #expect(request.first?.payload.getInteger(at: 0, as: UInt8.self) == 0xFB)
        // The client's file goes in compressed packets 2 ... 11; the last one closes the file with the empty
        // inner packet 39.
        let tail = try Self.inflate(CompressedCapture.loadDataLastFilePacket, expecting: [11])
        #expect(tail.readableBytes == 3476)
        #expect(tail.getBytes(at: tail.readableBytes - 4, length: 4) == [0, 0, 0, 39])
        // The server goes on from the client's last compressed id (11 + 1), for both ids.
        let result = try Codec.innerPackets(try Self.inflate(CompressedCapture.loadDataResult, expecting: [12, 13]))
        #expect(result.map(\.sequenceID) == [12, 13])
        #expect(result[0].payload.getBytes(at: 0, length: 3) == [0xFF, 0xFF, 0xFF])  // progress report
        #expect(result[1].payload.getInteger(at: 0, as: UInt8.self) == 0x00)  // OK
        #expect(String(buffer: result[1].payload).contains("Records: 3000"))
    }
}
