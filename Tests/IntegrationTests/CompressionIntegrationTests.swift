import MySQLWire
import NIOCore
import Sandbox
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension IntegrationTests {
    @Test("A real MariaDB accepts our compressed packets and our decoder reads its answers, ids as documented")
    func compressedProtocolAgainstRealServer() async throws {
        try await ClusterFixture.with(servers: 1) { cluster in
            try await cluster.rootSQL(
                "s1",
                """
                CREATE USER 'zip'@'127.0.0.1' IDENTIFIED BY 'pw-z'; GRANT ALL ON appdb.* TO 'zip'@'127.0.0.1';
                CREATE TABLE appdb.zipped (id INT PRIMARY KEY, v VARCHAR(200))
                """)
            let connection = try CompressedConnection(port: cluster.instance("s1").port, user: "zip", password: "pw-z")
            #expect(connection.session.capabilities.contains(.compress))

            // A deflated command in compressed packet 0: the answer starts at compressed id 1.
            let long = "SELECT '" + String(repeating: "abc", count: 400) + "' AS s, 7 AS n"
            try connection.send([query(long)], sequenceID: 0)
            var result = try connection.receiveResponse()
            #expect(result.compressedIDs.first == 1)
            #expect(result.packets.contains { $0.payload.readableBytesView.starts(with: [0xFC, 0xB0, 0x04]) })

            // Inner ids are not checked once compressed: a COM_QUERY numbered 7 is answered.
            try connection.send([MySQLPacket(sequenceID: 7, payload: query("SELECT 42").payload)], sequenceID: 0)
            result = try connection.receiveResponse()
            #expect(result.compressedIDs == [1])
            #expect(result.packets.contains { $0.payload == ByteBuffer(bytes: [2] + Array("42".utf8)) })

            // One inner packet cut across compressed packets 0 ... 11: the answer continues at 12.
            try connection.send([query(long)], sequenceID: 0, maxPayloadLength: 110)
            result = try connection.receiveResponse()
            #expect(result.compressedIDs.first == 12)

            // LOAD DATA LOCAL: the server asks in compressed packet 1; the file goes in 2, 3, ...; the OK
            // continues from the client's last compressed id.
            try connection.send([query("LOAD DATA LOCAL INFILE 'rows.tsv' INTO TABLE appdb.zipped")], sequenceID: 0)
            let request = try connection.receiveResponse()
            #expect(request.compressedIDs == [1])
            #expect(request.packets.first?.payload.getInteger(at: 0, as: UInt8.self) == 0xFB)
            let rows = (0..<2000).map { "\($0)\trow \($0) of the compressed load\n" }.joined()
            var file = ByteBuffer(string: rows)
            var inner: [MySQLPacket] = []
            var innerID: UInt8 = 2
            while file.readableBytes > 0, let chunk = file.readSlice(length: min(file.readableBytes, 8000)) {
                inner.append(MySQLPacket(sequenceID: innerID, payload: chunk))
                innerID &+= 1
            }
            inner.append(MySQLPacket(sequenceID: innerID, payload: ByteBuffer()))
            let next = try connection.send(inner, sequenceID: 2, maxPayloadLength: 16384)
            #expect(next > 4)
            let loaded = try connection.receiveResponse(skippingProgressReports: true)
            #expect(loaded.compressedIDs.first == next)
            #expect(loaded.packets.last?.payload.getInteger(at: 0, as: UInt8.self) == 0x00)
            try connection.send([query("SELECT COUNT(*) FROM appdb.zipped")], sequenceID: 0)
            result = try connection.receiveResponse()
            #expect(result.packets.contains { $0.payload == ByteBuffer(bytes: [4] + Array("2000".utf8)) })

            // A command in compressed packet 5 instead of 0: ERR 1156, then the server closes. (The ERR carries a
            // stale compressed id, 2 on 10.11: the server resets only its expected id before each command.)
            try connection.send([query("SELECT 1")], sequenceID: 5)
            result = try connection.receiveResponse()
            let error = try Packets.ErrorPacket.decode(
                try #require(result.packets.last).payload, capabilities: connection.session.capabilities)
            #expect(error.errorCode == 1156)
            #expect(try connection.receiveBytes() == 0)
        }
    }
}

private func query(_ sql: String) -> MySQLPacket {
    MySQLPacket(sequenceID: 0, payload: ByteBuffer(bytes: [Command.query.rawValue] + Array(sql.utf8)))
}

/// A blocking connection that logs in uncompressed, then speaks the compressed protocol through
/// `CompressedPacketEncoder` and `CompressedPacketDecoder`.
final class CompressedConnection {
    struct Response {
        var packets: [MySQLPacket] = []
        var compressedIDs: [UInt8] = []
    }

    let raw: RawConnection
    let session: ClientHandshakeStateMachine.Session
    var decoder = CompressedPacketDecoder()
    var wire = ByteBuffer()
    var inner = ByteBuffer()
    var innerDecoder = MySQLPacketDecoder()

    init(port: Int, user: String, password: String) throws {
        let scramble: [UInt8] = Array(1...20)
        guard
            let sha1 = MySQLNativePassword.recoverPasswordSHA1(
                response: MySQLNativePassword.response(password: password, scramble: scramble), scramble: scramble,
                doubleSHA1: MySQLNativePassword.doubleSHA1(password: password))
        else { throw Timeout(description: "cannot derive SHA1(password)") }
        raw = try RawConnection(port: port)
        var login = ClientHandshakeStateMachine(
            settings: .init(
                username: user, passwordSHA1: sha1, database: "appdb",
                capabilities: [.protocol41, .transactions, .compress, .localFiles], tls: .disabled))
        var action = login.packetReceived(try raw.receive())
        while true {
            switch action {
            case .send(let packet):
                try raw.send(packet)
                action = login.packetReceived(try raw.receive())
                continue
            case .authenticated(let established):
                session = established
            case .sendAndStartTLS, .failed, .pluginChallenge:
                throw Timeout(description: "login failed: \(action)")
            }
            break
        }
        wire = raw.input
    }

    /// Sends ordinary packets as compressed packets numbered from `sequenceID`; returns the next id.
    @discardableResult
    func send(_ packets: [MySQLPacket], sequenceID: UInt8, maxPayloadLength: Int = CompressedPacket.maxPayloadLength)
        throws -> UInt8
    {
        var stream = ByteBuffer()
        for packet in packets { MySQLPacketEncoder.write(packet, into: &stream) }
        var out = ByteBuffer()
        let next = CompressedPacketEncoder(maxPayloadLength: maxPayloadLength).encode(
            stream, sequenceID: sequenceID, into: &out)
        let bytes = Array(out.readableBytesView)
        let sent = bytes.withUnsafeBytes { Glibc.send(raw.fd, $0.baseAddress, $0.count, 0) }
        guard sent == bytes.count else { throw Timeout(description: "short send") }
        return next
    }

    /// Reads until a packet ends the response (OK, ERR other than a progress report, a 0xFB request, or an
    /// EOF after rows), returning the inner packets and the compressed ids they arrived in.
    func receiveResponse(skippingProgressReports: Bool = false) throws -> Response {
        var response = Response()
        var eofs = 0
        while true {
            if let packet = try innerDecoder.decode(buffer: &inner) {
                response.packets.append(packet)
                let start = packet.payload.readerIndex
                let first = packet.payload.getInteger(at: start, as: UInt8.self)
                let isFirst = response.packets.count == 1
                let isProgress = first == 0xFF && packet.payload.getInteger(at: start + 1, as: UInt16.self) == 0xFFFF
                if isProgress, skippingProgressReports { continue }
                if first == 0xFE, packet.payload.readableBytes < 9 { eofs += 1 }
                if isFirst && (first == 0x00 || first == 0xFB) || first == 0xFF || eofs == 2 { return response }
                continue
            }
            if let packet = try decoder.decode(buffer: &wire) {
                response.compressedIDs.append(packet.sequenceID)
                inner.writeImmutableBuffer(packet.payload)
                continue
            }
            if try receiveBytes() == 0 { throw Timeout(description: "connection closed") }
        }
    }

    /// Reads what the socket has into `wire`; 0 at end of stream.
    func receiveBytes() throws -> Int {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let count = chunk.withUnsafeMutableBytes { recv(raw.fd, $0.baseAddress, $0.count, 0) }
        if count > 0 { wire.writeBytes(chunk[0..<count]) }
        return max(0, count)
    }
}
