import Testing
import Topology

@Suite("Account matching")
struct AccountMatcherTests {
    static func account(_ user: String, _ host: String) -> Account {
        Account(user: user, host: host, plugin: "mysql_native_password", authenticationString: "*\(user)@\(host)")
    }

    @Test("the most specific host wins, like the server's ordering")
    func specificity() {
        let accounts = [
            Self.account("app", "%"), Self.account("app", "10.0.%"), Self.account("app", "10.0.0.5"),
            Self.account("app", "10.%"), Self.account("", "10.0.0.5"),
        ]
        #expect(AccountMatcher.match(user: "app", clientAddress: "10.0.0.5", in: accounts)?.host == "10.0.0.5")
        #expect(AccountMatcher.match(user: "app", clientAddress: "10.0.1.9", in: accounts)?.host == "10.0.%")
        #expect(AccountMatcher.match(user: "app", clientAddress: "10.9.1.9", in: accounts)?.host == "10.%")
        #expect(AccountMatcher.match(user: "app", clientAddress: "192.168.1.1", in: accounts)?.host == "%")
        #expect(AccountMatcher.match(user: "other", clientAddress: "10.0.0.5", in: accounts)?.user == "")
        #expect(AccountMatcher.match(user: "other", clientAddress: "10.0.0.6", in: accounts) == nil)
    }

    @Test(
        "host patterns: wildcards, netmasks, localhost",
        arguments: [
            ("127.0.0.1", "127.0.0.1", true), ("127.0.0.%", "127.0.0.9", true), ("127.0.0.%", "127.0.1.9", false),
            ("10.0.0._", "10.0.0.7", true), ("10.0.0._", "10.0.0.17", false),
            ("10.1.0.0/255.255.0.0", "10.1.200.3", true), ("10.1.0.0/255.255.0.0", "10.2.0.3", false),
            ("localhost", "127.0.0.1", true), ("%", "anything", true),
            ("%%%%%%%%%%%%b", "aaaaaaaaaaaaaaaaaaaaaaaa", false),
        ])
    func patterns(pattern: String, address: String, matches: Bool) {
        #expect(AccountMatcher.hostMatches(pattern: pattern, address: address) == matches)
    }
}
