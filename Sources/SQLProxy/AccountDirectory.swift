public import Topology

/// The accounts the proxy verifies clients against: read from the primary's `mysql.user` by the
/// controller, refreshed on an interval and at once when a login does not match (an account created or
/// a password changed a moment ago works on the first try). Refreshes are shared by concurrent logins
/// and spaced by `minimumRefreshGap`, so a flood of bad logins costs the primary at most a few reads a
/// second.
public actor AccountDirectory {
    public typealias Loader = @Sendable () async throws -> [Account]

    private let loader: Loader
    private let minimumRefreshGap: Duration
    private let clock = ContinuousClock()
    private var accounts: [Account] = []
    private var loadedAt: ContinuousClock.Instant?
    private var refreshing: Task<Void, Never>?
    private var lastError: String?

    public init(minimumRefreshGap: Duration = .milliseconds(200), loader: @escaping Loader) {
        self.loader = loader
        self.minimumRefreshGap = minimumRefreshGap
    }

    /// The account a login by `user` from `clientAddress` matches, from what is loaded now (loading
    /// first if nothing ever was).
    public func match(user: String, clientAddress: String) async -> Account? {
        if loadedAt == nil { await refresh() }
        return AccountMatcher.match(user: user, clientAddress: clientAddress, in: accounts)
    }

    /// Reads the accounts again unless that happened within `minimumRefreshGap`; concurrent callers
    /// wait for the same read.
    public func refresh() async {
        if let refreshing {
            await refreshing.value
            return
        }
        if let loadedAt, clock.now - loadedAt < minimumRefreshGap { return }
        let loader = self.loader
        let task = Task { () -> Result<[Account], any Error> in
            do { return .success(try await loader()) } catch { return .failure(error) }
        }
        let waiter = Task<Void, Never> { _ = await task.value }
        refreshing = waiter
        let result = await task.value
        refreshing = nil
        switch result {
        case .success(let loaded):
            accounts = loaded
            loadedAt = clock.now
            lastError = nil
        case .failure(let error):
            // Keep the accounts we have: a primary briefly unreachable must not lock everyone out.
            lastError = "\(error)"
            if loadedAt == nil { loadedAt = clock.now }
        }
    }

    public var count: Int { accounts.count }
    public var lastLoadError: String? { lastError }
}
