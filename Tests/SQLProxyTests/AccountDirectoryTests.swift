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

    @Test(
        "Accounts that need TLS are refused without it; those that need a certificate without one that meets the account, from the client and from the proxy"
    )
    func loginRefusals() {
        func account(tls: Bool = false, certificate: CertificateRequirement? = nil) -> Account {
            Account(
                user: "u", host: "%", plugin: "mysql_native_password", authenticationString: "",
                requiresTLS: tls, certificate: certificate)
        }
        let none = ClientSession.Certificates()
        #expect(ClientSession.loginRefusal(account(), tls: false, certificates: none) == nil)
        #expect(
            ClientSession.loginRefusal(account(tls: true), tls: false, certificates: none) == "the account requires TLS"
        )
        #expect(ClientSession.loginRefusal(account(tls: true), tls: true, certificates: none) == nil)

        let ca = "/CN=Example CA"
        let alice = CertificateNames(subject: "/O=Example/CN=alice", issuer: ca)
        let proxy = CertificateNames(subject: "/CN=switchyard", issuer: ca)
        let elsewhere = CertificateNames(subject: "/CN=alice", issuer: "/CN=Other CA")
        let x509 = CertificateRequirement()
        // REQUIRE X509 implies REQUIRE SSL.
        #expect(account(certificate: x509).requiresTLS)
        #expect(
            ClientSession.loginRefusal(
                account(certificate: x509), tls: false, certificates: .init(client: alice, proxy: proxy, asked: true))
                == "the account requires TLS")
        func refusal(_ required: CertificateRequirement, _ certificates: ClientSession.Certificates) -> String? {
            ClientSession.loginRefusal(account(certificate: required), tls: true, certificates: certificates)
        }
        #expect(refusal(x509, none)?.contains("proxy.tls.client_ca_file is not set") == true)
        #expect(refusal(x509, .init(proxy: proxy, asked: true))?.hasSuffix("the client presented none") == true)
        #expect(refusal(x509, .init(client: alice, proxy: proxy, asked: true)) == nil)
        #expect(refusal(x509, .init(client: alice, asked: true))?.contains("has none to show the server") == true)

        let issuer = CertificateRequirement(issuer: ca)
        #expect(refusal(issuer, .init(client: alice, proxy: proxy, asked: true)) == nil)
        #expect(
            refusal(issuer, .init(client: elsewhere, proxy: proxy, asked: true))
                == "the client certificate's issuer is '/CN=Other CA', the account requires '/CN=Example CA'")

        // The server checks the proxy's certificate against SUBJECT: only the proxy's own subject can pass.
        let subject = CertificateRequirement(issuer: ca, subject: "/O=Example/CN=alice")
        #expect(
            refusal(subject, .init(client: elsewhere, proxy: proxy, asked: true))?.hasPrefix(
                "the client certificate's issuer") == true)
        #expect(
            refusal(subject, .init(client: alice, proxy: proxy, asked: true))
                == "the server would refuse the proxy's certificate (tls.cert_file): its subject is '/CN=switchyard', "
                + "the account requires '/O=Example/CN=alice'")
        let proxysOwn = CertificateRequirement(subject: "/CN=switchyard")
        #expect(refusal(proxysOwn, .init(client: proxy, proxy: proxy, asked: true)) == nil)
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
