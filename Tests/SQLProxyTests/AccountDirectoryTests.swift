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
            return source.accounts.withLock { $0 }
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
