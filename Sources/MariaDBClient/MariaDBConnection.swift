import Dispatch
import Synchronization
import Topology

/// One connection to a MariaDB server through libmariadb, with an async API.
///
/// Every blocking C call runs on this connection's own serial dispatch queue, never on Swift's
/// cooperative pool. Every operation has a deadline: when it passes, the caller gets a `.timeout` error
/// at once while the C call finishes (or hits libmariadb's own timeout) on the queue; the connection is
/// then closed and further calls fail with `.busy` until that happens and `.closed` after. There is no
/// silent reconnect: a broken connection stays broken, and callers open a new one.
public final class MariaDBConnection: Sendable {
    private enum Phase {
        case idle
        case running
        case closed
    }

    public let options: ConnectionOptions
    private let native: NativeHandle
    private let queue: DispatchQueue
    /// Where operations' deadlines fire (each handler only resumes a continuation).
    private static let deadlines = DispatchQueue(label: "switchyard.mariadb.deadlines")
    private let phase = Mutex(Phase.idle)

    public init(options: ConnectionOptions) {
        self.options = options
        self.native = NativeHandle(address: options.address)
        self.queue = DispatchQueue(label: "switchyard.mariadb.\(options.address)")
    }

    /// Opens a connection and logs in.
    public static func connect(_ options: ConnectionOptions, deadline: Duration? = nil) async throws(MariaDBError)
        -> MariaDBConnection
    {
        let connection = MariaDBConnection(options: options)
        try await connection.open(deadline: deadline ?? options.connectTimeout)
        return connection
    }

    /// Logs in; on failure the connection is closed.
    public func open(deadline: Duration) async throws(MariaDBError) {
        let options = self.options
        try await run(deadline: deadline, what: "connect") { native throws(MariaDBError) in try native.connect(options)
        }
    }

    /// True while an operation (possibly one that already timed out) is running on the C handle.
    public var isBusy: Bool { phase.withLock { $0 == .running } }

    public var isClosed: Bool { phase.withLock { $0 == .closed } }

    /// Runs a statement and returns its rows.
    public func query(_ sql: String, deadline: Duration? = nil) async throws(MariaDBError) -> QueryResult {
        try await run(deadline: deadline ?? options.readTimeout, what: "query") { native throws(MariaDBError) in
            try native.query(sql)
        }
    }

    /// Runs a statement that returns no rows; returns the affected row count.
    @discardableResult
    public func execute(_ sql: String, deadline: Duration? = nil) async throws(MariaDBError) -> UInt64 {
        try await query(sql, deadline: deadline).affectedRows
    }

    /// Runs several blocking steps on the C handle as one operation with one deadline.
    public func withSession<T: Sendable>(
        deadline: Duration,
        _ body: @escaping @Sendable (BlockingSession) throws(MariaDBError) -> T
    ) async throws(MariaDBError) -> T {
        try await run(deadline: deadline, what: "operation") { native throws(MariaDBError) in
            try body(BlockingSession(native: native))
        }
    }

    /// The negotiated TLS cipher, nil for plaintext.
    public func cipher() async throws(MariaDBError) -> String? {
        try await run(deadline: options.readTimeout, what: "cipher") { native throws(MariaDBError) in native.cipher }
    }

    /// Closes the connection once any running operation returns.
    public func close() {
        let native = self.native
        let shouldClose = phase.withLock { phase -> Bool in
            switch phase {
            case .idle:
                phase = .closed
                return true
            case .running, .closed:
                return false
            }
        }
        if shouldClose { queue.async { native.close() } }
    }

    private func run<T: Sendable>(
        deadline: Duration,
        what: String,
        _ body: @escaping @Sendable (NativeHandle) throws(MariaDBError) -> T
    ) async throws(MariaDBError) -> T {
        let address = options.address
        let start = phase.withLock { phase -> MariaDBError? in
            switch phase {
            case .idle:
                phase = .running
                return nil
            case .running:
                return MariaDBError(
                    code: .busy,
                    message:
                        "server not answering: an earlier operation on this connection timed out and has not returned",
                    server: address)
            case .closed:
                return MariaDBError(code: .closed, message: "connection is closed", server: address)
            }
        }
        if let start { throw start }

        let result: Result<T, MariaDBError> = await withCheckedContinuation { continuation in
            let slot = ContinuationSlot(continuation)
            let native = self.native
            // A timer, not `asyncAfter`: cancelled when the operation returns, it lets go of its closure at
            // once instead of holding it until the deadline. Its own serial queue, not `.global()`, whose
            // worker threads (one per core, shared with Swift's tasks on Linux) may all be busy when it fires.
            // (Dispatch sources are thread-safe; the SDK does not mark them Sendable.)
            nonisolated(unsafe) let timer = DispatchSource.makeTimerSource(queue: Self.deadlines)
            let nanoseconds = max(deadline.wholeNanoseconds, 0)
            timer.schedule(deadline: .now() + .nanoseconds(Int(clamping: nanoseconds)))
            timer.setEventHandler {
                slot.take()?.resume(
                    returning: .failure(
                        MariaDBError(
                            code: .timeout, message: "\(what) did not finish within \(deadline)", server: address)))
            }
            timer.activate()
            queue.async {
                let outcome: Result<T, MariaDBError>
                do throws(MariaDBError) { outcome = .success(try body(native)) } catch { outcome = .failure(error) }
                // Settle the phase before waking the caller, so its next call finds the connection idle.
                let waiting = slot.take()
                timer.cancel()
                var broken = !native.isOpen || waiting == nil  // closed by the operation, or timed out
                if case .failure(let error) = outcome, error.code != .query || error.errno >= 2000 {
                    broken = true  // connect failures and client-side (2xxx) errors leave no usable session
                }
                if broken { native.close() }
                self.phase.withLock { $0 = broken ? .closed : .idle }
                waiting?.resume(returning: outcome)
            }
        }
        return try result.get()
    }
}

/// Blocking access to the C handle inside `MariaDBConnection.withSession`; valid only in that closure.
public struct BlockingSession {
    fileprivate let native: NativeHandle

    public func query(_ sql: String) throws(MariaDBError) -> QueryResult { try native.query(sql) }

    @discardableResult
    public func execute(_ sql: String) throws(MariaDBError) -> UInt64 { try native.query(sql).affectedRows }
}

/// Hands out a continuation exactly once, to whichever of the operation and its deadline comes first.
private final class ContinuationSlot<T: Sendable>: Sendable {
    private let continuation: Mutex<CheckedContinuation<Result<T, MariaDBError>, Never>?>

    init(_ continuation: CheckedContinuation<Result<T, MariaDBError>, Never>) {
        self.continuation = Mutex(continuation)
    }

    /// The continuation, the first time only.
    func take() -> CheckedContinuation<Result<T, MariaDBError>, Never>? {
        continuation.withLock { slot in slot.take() }
    }
}
