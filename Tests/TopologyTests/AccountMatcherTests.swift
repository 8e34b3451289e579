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
        #expect(
            AccountMatcher.match(user: "app", clientAddress: "10.0.0.5", in: accounts, resolvesNames: false)?.host
                == "10.0.0.5")
        #expect(
            AccountMatcher.match(user: "app", clientAddress: "10.0.1.9", in: accounts, resolvesNames: false)?.host
                == "10.0.%")
        #expect(
            AccountMatcher.match(user: "app", clientAddress: "10.9.1.9", in: accounts, resolvesNames: false)?.host
                == "10.%")
        #expect(
            AccountMatcher.match(user: "app", clientAddress: "192.168.1.1", in: accounts, resolvesNames: false)?.host
                == "%")
        #expect(
            AccountMatcher.match(user: "other", clientAddress: "10.0.0.5", in: accounts, resolvesNames: false)?.user
                == "")
        #expect(
            AccountMatcher.match(user: "other", clientAddress: "10.0.0.6", in: accounts, resolvesNames: false) == nil)
    }

    @Test(
        "host patterns: wildcards, netmasks, localhost",
        arguments: [
            ("127.0.0.1", "127.0.0.1", true), ("127.0.0.%", "127.0.0.9", true), ("127.0.0.%", "127.0.1.9", false),
            ("10.0.0._", "10.0.0.7", true), ("10.0.0._", "10.0.0.17", false),
            ("10.1.0.0/255.255.0.0", "10.1.200.3", true), ("10.1.0.0/255.255.0.0", "10.2.0.3", false),
            ("%", "anything", true), ("%%%%%%%%%%%%b", "aaaaaaaaaaaaaaaaaaaaaaaa", false),
        ])
    func patterns(pattern: String, address: String, matches: Bool) {
        #expect(AccountMatcher.hostMatches(pattern: pattern, address: address, resolvesNames: false) == matches)
        #expect(AccountMatcher.hostMatches(pattern: pattern, address: address, resolvesNames: true) == matches)
    }

    /// Measured on MariaDB 10.11 over TCP from 127.0.0.1: with `skip_name_resolve` on, `'u'@'localhost'` is
    /// refused (1045) and `'root'@'127.0.0.1'` is chosen over `'root'@'localhost'`; with it off,
    /// `CURRENT_USER()` is `u@localhost` even when `'u'@'127.0.0.1'` exists too.
    @Test("localhost is a loopback client's name only when the server resolves names, and then it wins")
    func localhost() {
        let both = [Self.account("root", "localhost"), Self.account("root", "127.0.0.1")]
        #expect(
            AccountMatcher.match(user: "root", clientAddress: "127.0.0.1", in: both, resolvesNames: false)?.host
                == "127.0.0.1")
        #expect(
            AccountMatcher.match(user: "root", clientAddress: "127.0.0.1", in: both.reversed(), resolvesNames: false)?
                .host == "127.0.0.1")
        #expect(
            AccountMatcher.match(user: "root", clientAddress: "127.0.0.1", in: both, resolvesNames: true)?.host
                == "localhost")
        #expect(
            AccountMatcher.match(user: "root", clientAddress: "127.0.0.1", in: both.reversed(), resolvesNames: true)?
                .host == "localhost")
        let local = [Self.account("u", "localhost")]
        #expect(AccountMatcher.match(user: "u", clientAddress: "127.0.0.1", in: local, resolvesNames: false) == nil)
        #expect(
            AccountMatcher.match(user: "u", clientAddress: "::1", in: local, resolvesNames: true)?.host == "localhost")
        #expect(AccountMatcher.match(user: "u", clientAddress: "10.0.0.1", in: local, resolvesNames: true) == nil)
        #expect(AccountMatcher.hostMatches(pattern: "local%", address: "127.0.0.1", resolvesNames: true))
        #expect(!AccountMatcher.hostMatches(pattern: "local%", address: "127.0.0.1", resolvesNames: false))
    }
}
