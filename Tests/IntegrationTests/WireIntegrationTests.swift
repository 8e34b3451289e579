import Foundation
import MySQLWire
import NIOCore
import Sandbox
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension IntegrationTests {
    @Test("MySQLWire decodes a real MariaDB 10.11 greeting: version, capabilities, TLS offered, native password")
    func realGreeting() async throws {
        try await ClusterFixture.with(servers: 1) { cluster in
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var timeout = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(cluster.instance("s1").port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            #expect(connected == 0)
            var decoder = MySQLPacketDecoder()
            var input = ByteBuffer()
            var greeting: MySQLPacket?
            var chunk = [UInt8](repeating: 0, count: 4096)
            while greeting == nil {
                let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                guard count > 0 else { break }
                input.writeBytes(chunk[0..<count])
                greeting = try decoder.decode(buffer: &input)
            }
            let packet = try #require(greeting)
            #expect(packet.sequenceID == 0)
            let handshake = try Packets.HandshakeV10.decode(packet.payload)
            #expect(handshake.serverVersion.contains("MariaDB"))
            #expect(handshake.capabilities.isSuperset(of: [.protocol41, .ssl, .pluginAuth, .secureConnection]))
            #expect(handshake.capabilities.contains(.mariaDBStatementBulkOperations))
            #expect(handshake.scramble.count == 20)
            #expect(handshake.authPluginName == "mysql_native_password")
            #expect(handshake.connectionID > 0)
        }
    }
}
