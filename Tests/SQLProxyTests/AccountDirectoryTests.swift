import Synchronization
import Testing
import Topology

@testable import SQLProxy

@Suite struct AccountDirectoryTests {
    final class Source: Sendable {
        let accounts = Mutex<[Account]>([])
        let reads = Atomic<Int>(0)
    }

    private func directory(_ source: Source) -> AccountDirectory {
        AccountDirectory(minimumRefreshGap: .milliseconds(20)) {
            source.reads.add(1, ordering: .relaxed)
            return AccountTable(accounts: source.accounts.withLock { $0 }, resolvesNames: false)
        }
    }

    @Test("Accounts that need TLS are refused without it; those that need a client certificate always")
    func loginRefusals() {
        func account(tls: Bool = false, certificate: Bool = false) -> Account {
            Account(
                user: "u", host: "%", plugin: "mysql_native_password", authenticationString: "",
                requiresTLS: tls, requiresCertificate: certificate)
        }
        #expect(ClientSession.loginRefusal(account(), tls: false) == nil)
        #expect(ClientSession.loginRefusal(account(tls: true), tls: false) == "the account requires TLS")
        #expect(ClientSession.loginRefusal(account(tls: true), tls: true) == nil)
        // REQUIRE X509 implies REQUIRE SSL.
        #expect(account(certificate: true).requiresTLS)
        for tls in [false, true] {
            #expect(
                ClientSession.loginRefusal(account(certificate: true), tls: tls)?.contains("client certificate")
                    == true)
        }
    }

    @Test("A refresh after a change always sees the change, even right after another read")
    func freshAfterChange() async {
        let source = Source()
        let accounts = directory(source)
        #expect(await accounts.match(user: "a", clientAddress: "127.0.0.1") == nil)
        source.accounts.withLock {
            $0 = [Account(user: "a", host: "%", plugin: "mysql_native_password", authenticationString: "")]
        }
        await accounts.refresh()
        #expect(await accounts.match(user: "a", clientAddress: "127.0.0.1")?.user == "a")
    }

    @Test("Users defined in the config are matched against their entries only; others come from the primary")
    func configured() async {
        let source = Source()
        source.accounts.withLock {
            $0 = [
                Account(user: "cfg", host: "%", plugin: "mysql_native_password", authenticationString: "*SERVER"),
                Account(user: "app", host: "%", plugin: "mysql_native_password", authenticationString: "*APP"),
            ]
        }
        let fromConfig = Account(
            user: "cfg", host: "10.%", plugin: "mysql_native_password", authenticationString: "*CONFIG",
            requiresTLS: true)
        let accounts = AccountDirectory(configured: [fromConfig]) {
            source.reads.add(1, ordering: .relaxed)
            return AccountTable(accounts: source.accounts.withLock { $0 }, resolvesNames: false)
        }
        #expect(await accounts.match(user: "cfg", clientAddress: "10.1.2.3") == fromConfig)
        #expect(source.reads.load(ordering: .relaxed) == 0, "no read of the primary for a configured user")
        #expect(await accounts.match(user: "cfg", clientAddress: "192.168.1.1") == nil, "not the server's entry")
        #expect(await accounts.match(user: "app", clientAddress: "192.168.1.1")?.authenticationString == "*APP")
    }

    @Test("Concurrent refreshes share reads")
    func shared() async {
        let source = Source()
        let accounts = directory(source)
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<50 { group.addTask { await accounts.refresh() } }
        }
        #expect(source.reads.load(ordering: .relaxed) <= 3)
    }
}
