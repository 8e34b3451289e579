import MySQLWire
import NIOCore
import Testing

@Suite("Handshake packets")
struct HandshakeTests {
    static let mariaDBCapabilities: CapabilityFlags = [
        .foundRows, .longFlag, .connectWithDB, .noSchema, .compress, .odbc, .localFiles, .ignoreSpace, .protocol41,
        .interactive, .ssl, .transactions, .secureConnection, .multiStatements, .multiResults, .psMultiResults,
        .pluginAuth, .connectAttributes, .pluginAuthLengthEncodedClientData, .sessionTrack, .deprecateEOF,
        .mariaDBStatementBulkOperations, .mariaDBExtendedTypeInfo,
    ]

    @Test("a MariaDB greeting round-trips, extended capabilities in the filler bytes")
    func handshakeV10RoundTrip() throws {
        let greeting = Packets.HandshakeV10(
            serverVersion: "5.5.5-10.11.19-MariaDB-0+deb12u1-log", connectionID: 42,
            scramble: Array(1...20), capabilities: Self.mariaDBCapabilities, collation: 45,
            status: [.autocommit], authPluginName: "mysql_native_password")
        var buffer = ByteBuffer()
        greeting.encode(into: &buffer)
        let decoded = try Packets.HandshakeV10.decode(buffer)
        #expect(decoded == greeting)
        #expect(decoded.capabilities.contains(.mariaDBStatementBulkOperations))
    }

    @Test("truncated greetings and other protocol versions are refused, never trapped on")
    func handshakeV10Errors() {
        var greeting = ByteBuffer()
        Packets.HandshakeV10(
            serverVersion: "11.0", connectionID: 1, scramble: Array(repeating: 7, count: 20),
            capabilities: Self.mariaDBCapabilities, collation: 8, status: [], authPluginName: "mysql_native_password"
        ).encode(into: &greeting)
        for cut in 0..<greeting.readableBytes - 25 {
            let prefix = greeting.getSlice(at: 0, length: cut) ?? ByteBuffer()
            #expect(throws: Packets.HandshakeV10.DecodeError.self) { _ = try Packets.HandshakeV10.decode(prefix) }
        }
        #expect(throws: Packets.HandshakeV10.DecodeError.unsupportedProtocolVersion(9)) {
            _ = try Packets.HandshakeV10.decode(ByteBuffer(bytes: [9, 0]))
        }
    }

    @Test("a handshake response round-trips with database, plugin and connection attributes")
    func handshakeResponseRoundTrip() throws {
        let response = Packets.HandshakeResponse41(
            capabilities: Self.mariaDBCapabilities, collation: 45, username: "app",
            authResponse: Array(repeating: 0xAA, count: 20), database: "appdb",
            authPluginName: "mysql_native_password", attributes: [("_client_name", "libmariadb"), ("_pid", "77")])
        var buffer = ByteBuffer()
        response.encode(into: &buffer)
        let decoded = try Packets.HandshakeResponse41.decode(buffer, serverCapabilities: Self.mariaDBCapabilities)
        #expect(decoded == response)
        #expect(!Packets.HandshakeResponse41.isSSLRequest(buffer))

        var sslRequest = ByteBuffer()
        response.encodeFixedPart(into: &sslRequest)
        #expect(Packets.HandshakeResponse41.isSSLRequest(sslRequest))
    }

    @Test("a response is decoded with the shared capabilities: no database unless both sides have CONNECT_WITH_DB")
    func responseUsesSharedCapabilities() throws {
        var server = Self.mariaDBCapabilities
        server.remove(.connectWithDB)
        server.remove(.connectAttributes)
        var client = Self.mariaDBCapabilities
        client.remove(.connectWithDB)
        client.remove(.connectAttributes)
        let response = Packets.HandshakeResponse41(
            capabilities: client, collation: 8, username: "u", authResponse: [1, 2, 3],
            authPluginName: "mysql_native_password")
        var buffer = ByteBuffer()
        response.encode(into: &buffer)
        let decoded = try Packets.HandshakeResponse41.decode(buffer, serverCapabilities: server)
        #expect(decoded.database == nil)
        #expect(decoded.authPluginName == "mysql_native_password")
        #expect(throws: Packets.HandshakeResponse41.DecodeError.self) {
            _ = try Packets.HandshakeResponse41.decode(ByteBuffer(bytes: [1, 2, 3]), serverCapabilities: server)
        }
    }
}
