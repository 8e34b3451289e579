import MySQLWire
import NIOCore
import Testing

@Suite("Packets and length-encoded values")
struct PacketTests {
    @Test(
        "length-encoded integers round-trip in their shortest form",
        arguments: [
            (UInt64(0), 1), (250, 1), (251, 3), (0xFFFF, 3), (0x1_0000, 4), (0xFF_FFFF, 4), (0x100_0000, 9), (.max, 9),
        ])
    func lengthEncodedIntegers(value: UInt64, width: Int) {
        var buffer = ByteBuffer()
        #expect(buffer.writeLengthEncodedInteger(value) == width)
        #expect(buffer.readLengthEncodedInteger() == value)
        #expect(buffer.readableBytes == 0)
    }

    @Test("incomplete or NULL length-encoded values leave the reader index alone")
    func incompleteLengthEncoded() {
        var short = ByteBuffer(bytes: [0xFC, 0x01])
        #expect(short.readLengthEncodedInteger() == nil)
        #expect(short.readableBytes == 2)
        var null = ByteBuffer(bytes: [0xFB])
        #expect(null.readLengthEncodedInteger() == nil)
        var string = ByteBuffer(bytes: [0x05, 0x61, 0x62])
        #expect(string.readLengthEncodedSlice() == nil)
        #expect(string.readableBytes == 3)
        var terminated = ByteBuffer(bytes: [0x61, 0x62, 0x00, 0x63])
        #expect(terminated.readNullTerminatedString() == "ab")
        #expect(terminated.readableBytes == 1)
    }

    @Test("ERR packets round-trip with SQLSTATE under protocol 4.1")
    func errorPacket() throws {
        let packet = Packets.ErrorPacket(
            errorCode: 1045, sqlState: "28000",
            message: "Access denied for user 'app'@'127.0.0.1' (using password: YES)")
        var buffer = ByteBuffer()
        packet.encode(into: &buffer, capabilities: [.protocol41])
        #expect(buffer.getInteger(at: 0, as: UInt8.self) == 0xFF)
        #expect(try Packets.ErrorPacket.decode(buffer, capabilities: [.protocol41]) == packet)
        #expect(throws: Packets.ErrorPacket.DecodeError.truncated) {
            _ = try Packets.ErrorPacket.decode(ByteBuffer(bytes: [0xFF, 0x01]), capabilities: [.protocol41])
        }
    }

    @Test("OK packets carry the status flags that say whether a transaction is open")
    func okPacket() throws {
        let packet = Packets.OKPacket(
            affectedRows: 3, lastInsertID: 70_000, status: [.inTransaction], warnings: 1, info: "Rows matched: 3")
        var buffer = ByteBuffer()
        packet.encode(into: &buffer, capabilities: [.protocol41])
        let decoded = try Packets.OKPacket.decode(buffer, capabilities: [.protocol41])
        #expect(decoded == packet)
        #expect(decoded.status.contains(.inTransaction))
        #expect(!decoded.status.contains(.autocommit))
        #expect(throws: Packets.OKPacket.DecodeError.notAnOKPacket) {
            _ = try Packets.OKPacket.decode(ByteBuffer(bytes: [0xFF]), capabilities: [.protocol41])
        }
    }

    @Test("EOF packets carry warnings and status; a 0xFE packet of 9 bytes or more is not one")
    func eofPacket() throws {
        let packet = Packets.EOFPacket(warnings: 2, status: [.autocommit, .moreResultsExist])
        var buffer = ByteBuffer()
        packet.encode(into: &buffer, capabilities: [.protocol41])
        #expect(Array(buffer.readableBytesView) == [0xFE, 0x02, 0x00, 0x0A, 0x00])
        #expect(try Packets.EOFPacket.decode(buffer, capabilities: [.protocol41]) == packet)

        var old = ByteBuffer()
        packet.encode(into: &old, capabilities: [])
        #expect(Array(old.readableBytesView) == [0xFE], "before protocol 4.1: the header alone")
        #expect(try Packets.EOFPacket.decode(old, capabilities: []) == Packets.EOFPacket(warnings: 0, status: []))

        // A row whose first value has an 8-byte length, or an OK packet with the 0xFE header: not an EOF.
        var ok = ByteBuffer()
        Packets.OKPacket(info: String(repeating: "x", count: 4)).encode(
            into: &ok, capabilities: [.protocol41], header: 0xFE)
        #expect(!Packets.EOFPacket.isEOF(ok) && ok.readableBytes >= 9)
        #expect(throws: Packets.EOFPacket.DecodeError.notAnEOFPacket) {
            _ = try Packets.EOFPacket.decode(
                ByteBuffer(bytes: [UInt8(0xFE)] + [UInt8](repeating: 0, count: 8)), capabilities: [])
        }
        #expect(throws: Packets.EOFPacket.DecodeError.truncated) {
            _ = try Packets.EOFPacket.decode(ByteBuffer(bytes: [0xFE, 0x01]), capabilities: [.protocol41])
        }
    }

    @Test("capabilities negotiate to the intersection, MariaDB's extended bits included")
    func capabilities() {
        let server: CapabilityFlags = [.protocol41, .ssl, .compress, .mariaDBStatementBulkOperations]
        let client: CapabilityFlags = [.protocol41, .ssl, .mariaDBStatementBulkOperations, .multiStatements]
        let negotiated = server.negotiated(with: client)
        #expect(negotiated == [.protocol41, .ssl, .mariaDBStatementBulkOperations])
        #expect(negotiated.upper == 1 << 2)
    }
}
