public import Topology

/// The accounts the proxy verifies clients against: read from the primary's `mysql.user` by the
/// controller, refreshed on an interval and at once when a login does not match, so an account created
/// or a password changed a moment ago works on the first try. Users with `configured` accounts are
/// checked against those only (the config decides for them, whatever the primary holds).
///
/// `refresh()` returns only after a read that started after the call has finished, so it never answers
/// from a read older than the change the caller may be looking for. Concurrent callers share reads, and
/// reads start at most once per `minimumRefreshGap`: a flood of bad logins costs the primary a bounded
/// number of small queries.
public actor AccountDirectory {
    public typealias Loader = @Sendable () async throws -> AccountTable

    private let loader: Loader
    /// By user name.
    private let configured: [String: [Account]]
    private let minimumRefreshGap: Duration
    private let clock = ContinuousClock()
    private var accounts = AccountTable(accounts: [], resolvesNames: false)
    private var loaded = false
    private var lastStart: ContinuousClock.Instant?
    /// Start time of the newest read that has finished (successfully or not).
    private var lastFinishedStart: ContinuousClock.Instant?
    private var inFlight: Task<Void, Never>?
    private var lastError: String?

    public init(
        minimumRefreshGap: Duration = .milliseconds(20), configured: [Account] = [], loader: @escaping Loader
    ) {
        self.loader = loader
        self.configured = Dictionary(grouping: configured, by: \.user)
        self.minimumRefreshGap = minimumRefreshGap
    }

    /// The account a login by `user` from `clientAddress` matches, from what is loaded now (loading
    /// first if nothing was loaded yet).
    public func match(user: String, clientAddress: String) async -> Account? {
        if let own = configured[user] {
            // The proxy's own rule for the config's accounts: `localhost` means a client on the loopback address.
            return AccountMatcher.match(user: user, clientAddress: clientAddress, in: own, resolvesNames: true)
        }
        if !loaded { await refresh() }
        return AccountMatcher.match(
            user: user, clientAddress: clientAddress, in: accounts.accounts, resolvesNames: accounts.resolvesNames)
    }

    /// Reads the accounts again; see the type's documentation for sharing and spacing.
    public func refresh() async {
        let requested = clock.now
        while true {
            if let finished = lastFinishedStart, finished >= requested { return }
            if let inFlight {
                await inFlight.value
                continue
            }
            if let lastStart, clock.now < lastStart + minimumRefreshGap {
                try? await Task.sleep(until: lastStart + minimumRefreshGap, clock: clock)
                continue
            }
            let started = clock.now
            lastStart = started
            let task = Task { await self.load(started: started) }
            inFlight = task
            await task.value
        }
    }

    /// One read; the bookkeeping happens on the actor before the task completes, so a caller woken by
    /// the task's end always sees it.
    private func load(started: ContinuousClock.Instant) async {
        let result: Result<AccountTable, any Error>
        do { result = .success(try await loader()) } catch { result = .failure(error) }
        inFlight = nil
        lastFinishedStart = started
        switch result {
        case .success(let fresh):
            accounts = fresh
            loaded = true
            lastError = nil
        case .failure(let error):
            // Keep the accounts we have: a primary briefly unreachable must not lock everyone out.
            lastError = "\(error)"
        }
    }

    public var count: Int { accounts.accounts.count }
    public var lastLoadError: String? { lastError }
}
