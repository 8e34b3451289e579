import Testing
import Topology

@Suite struct CIDRTests {
    @Test("IPv4 and IPv6 networks match the addresses inside them only")
    func matching() throws {
        let ten = try #require(CIDR("10.0.0.0/8"))
        #expect(ten.contains("10.1.2.3"))
        #expect(!ten.contains("11.0.0.1"))
        #expect(ten.contains("::ffff:10.9.9.9"))
        let host = try #require(CIDR("127.0.0.1"))
        #expect(host.contains("127.0.0.1") && !host.contains("127.0.0.2"))
        let odd = try #require(CIDR("192.168.1.128/25"))
        #expect(odd.contains("192.168.1.200") && !odd.contains("192.168.1.127"))
        let v6 = try #require(CIDR("fd00::/8"))
        #expect(v6.contains("fd12::1") && !v6.contains("fe80::1") && !v6.contains("10.0.0.1"))
        #expect(try #require(CIDR("0.0.0.0/0")).contains("8.8.8.8"))
    }

    @Test("Malformed networks are refused")
    func malformed() {
        for text in ["10.0.0.0/33", "10.0.0/8", "banana", "::1/129", "10.0.0.0/-1", ""] {
            #expect(CIDR(text) == nil, "\(text)")
        }
    }
}
