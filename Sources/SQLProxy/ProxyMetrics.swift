public import CoreMetrics
import MySQLWire
import NIOConcurrencyHelpers
import Synchronization
import Topology

/// The proxy's counters: exported through swift-metrics (Prometheus at `/metrics`) and kept as plain
/// totals for `switchyard status`. Per-command counters are made once, so the hot path never looks up a
/// metric by name.
public final class ProxyMetrics: Sendable {
    public struct Totals: Sendable, Hashable, Codable {
        public var connectionsCurrent: Int
        public var connectionsTotal: Int
        public var statementsTotal: Int
        public var bytesFromClients: Int
        public var bytesToClients: Int
        public var errorsTotal: Int
        public var failedLogins: Int
        /// TLS hops moved to the fast path after login, and hops that stayed on NIOSSL.
        public var tlsFastPathHops: Int
        public var tlsFastPathUnavailable: Int
        /// Sessions moved to a new server connection between statements (primary moved, connection lost),
        /// and sessions ended because they could not move.
        public var sessionsMoved: Int
        public var sessionsNotMoved: Int
        /// Times a logged-in session was handed to the fast relay, and given back to SwiftNIO.
        public var fastRelayHandovers: Int
        public var fastRelayReturns: Int
    }

    private let factory: any MetricsFactory
    private let current: Gauge
    private let bytesIn: Counter
    private let bytesOut: Counter
    private let connectTime: Timer
    /// Indexed by command byte; nil for bytes that are no command.
    private let commandCounters: [Counter?]
    private let otherCommands: Counter
    private let keyed = NIOLockedValueBox<[String: Counter]>([:])
    /// Users with a label of their own; later ones share `other`, so thousands of accounts cannot blow
    /// up the number of series.
    private let labelledUsers = NIOLockedValueBox<Set<String>>([])
    static let maxUserLabels = 500
    static let otherUsersLabel = "_other"

    private let connectionsCurrent = Atomic<Int>(0)
    private let connectionsTotal = Atomic<Int>(0)
    private let statementsTotal = Atomic<Int>(0)
    private let bytesFromClients = Atomic<Int>(0)
    private let bytesToClients = Atomic<Int>(0)
    private let errorsTotal = Atomic<Int>(0)
    private let failedLoginsTotal = Atomic<Int>(0)
    private let tlsFastPathHops = Atomic<Int>(0)
    private let tlsFastPathUnavailable = Atomic<Int>(0)
    private let sessionsMoved = Atomic<Int>(0)
    private let sessionsNotMoved = Atomic<Int>(0)
    private let fastRelayHandovers = Atomic<Int>(0)
    private let fastRelayReturns = Atomic<Int>(0)

    public init(factory: any MetricsFactory) {
        self.factory = factory
        current = Gauge(label: "switchyard_proxy_connections", dimensions: [], factory: factory)
        bytesIn = Counter(
            label: "switchyard_proxy_bytes_total", dimensions: [("direction", "from_client")], factory: factory)
        bytesOut = Counter(
            label: "switchyard_proxy_bytes_total", dimensions: [("direction", "to_client")], factory: factory)
        connectTime = Timer(label: "switchyard_proxy_backend_connect_seconds", dimensions: [], factory: factory)
        var counters = [Counter?](repeating: nil, count: 256)
        for command in Command.allCases {
            counters[Int(command.rawValue)] = Counter(
                label: "switchyard_proxy_statements_total", dimensions: [("command", command.metricName)],
                factory: factory)
        }
        commandCounters = counters
        otherCommands = Counter(
            label: "switchyard_proxy_statements_total", dimensions: [("command", "other")], factory: factory)
    }

    func connectionOpened() {
        current.record(connectionsCurrent.add(1, ordering: .relaxed).newValue)
    }

    func connectionClosed() {
        current.record(connectionsCurrent.subtract(1, ordering: .relaxed).newValue)
    }

    /// A client logged in (counted per user and per TLS version).
    func loggedIn(user: String, tlsVersion: String) {
        connectionsTotal.add(1, ordering: .relaxed)
        counter("switchyard_proxy_connections_total", [("tls_version", tlsVersion)]).increment()
        let label = labelledUsers.withLockedValue { users -> String in
            if users.contains(user) { return user }
            guard users.count < Self.maxUserLabels else { return Self.otherUsersLabel }
            users.insert(user)
            return user
        }
        counter("switchyard_proxy_user_connections_total", [("user", label)]).increment()
    }

    func failedLogin() {
        failedLoginsTotal.add(1, ordering: .relaxed)
    }

    func command(_ byte: UInt8) {
        statementsTotal.add(1, ordering: .relaxed)
        (commandCounters[Int(byte)] ?? otherCommands).increment()
    }

    func bytes(fromClient: Int = 0, toClient: Int = 0) {
        if fromClient > 0 {
            bytesFromClients.add(fromClient, ordering: .relaxed)
            bytesIn.increment(by: fromClient)
        }
        if toClient > 0 {
            bytesToClients.add(toClient, ordering: .relaxed)
            bytesOut.increment(by: toClient)
        }
    }

    func error(_ errno: UInt16) {
        errorsTotal.add(1, ordering: .relaxed)
        counter("switchyard_proxy_errors_total", [("errno", String(errno))]).increment()
    }

    func backendConnected(after duration: Duration) {
        connectTime.recordNanoseconds(duration.wholeNanoseconds)
    }

    public func totals() -> Totals {
        Totals(
            connectionsCurrent: connectionsCurrent.load(ordering: .relaxed),
            connectionsTotal: connectionsTotal.load(ordering: .relaxed),
            statementsTotal: statementsTotal.load(ordering: .relaxed),
            bytesFromClients: bytesFromClients.load(ordering: .relaxed),
            bytesToClients: bytesToClients.load(ordering: .relaxed),
            errorsTotal: errorsTotal.load(ordering: .relaxed),
            failedLogins: failedLoginsTotal.load(ordering: .relaxed),
            tlsFastPathHops: tlsFastPathHops.load(ordering: .relaxed),
            tlsFastPathUnavailable: tlsFastPathUnavailable.load(ordering: .relaxed),
            sessionsMoved: sessionsMoved.load(ordering: .relaxed),
            sessionsNotMoved: sessionsNotMoved.load(ordering: .relaxed),
            fastRelayHandovers: fastRelayHandovers.load(ordering: .relaxed),
            fastRelayReturns: fastRelayReturns.load(ordering: .relaxed))
    }

    /// A session whose server connection went away between statements: moved to a new one, or ended.
    func sessionMove(moved: Bool) {
        count(
            moved, sessionsMoved, else: sessionsNotMoved,
            "switchyard_proxy_session_moves_total", [("result", moved ? "moved" : "ended")])
    }

    /// A session handed to the fast relay, or given back to SwiftNIO.
    func fastRelay(handedOver: Bool) {
        count(
            handedOver, fastRelayHandovers, else: fastRelayReturns,
            "switchyard_proxy_fast_relay_total", [("event", handedOver ? "handed_over" : "returned")])
    }

    /// A TLS hop after login: switched to the fast path, or kept on NIOSSL.
    func tlsFastPath(hop: String, active: Bool) {
        count(
            active, tlsFastPathHops, else: tlsFastPathUnavailable,
            "switchyard_proxy_tls_fast_path_total", [("hop", hop), ("result", active ? "active" : "unavailable")])
    }

    /// An event with two outcomes: the outcome's total for `switchyard status`, and the labelled counter.
    private func count(
        _ outcome: Bool, _ whenTrue: borrowing Synchronization.Atomic<Int>,
        else whenFalse: borrowing Synchronization.Atomic<Int>,
        _ label: String, _ dimensions: [(String, String)]
    ) {
        if outcome {
            whenTrue.add(1, ordering: .relaxed)
        } else {
            whenFalse.add(1, ordering: .relaxed)
        }
        counter(label, dimensions).increment()
    }

    private func counter(_ label: String, _ dimensions: [(String, String)]) -> Counter {
        let key = ([label] + dimensions.map(\.1)).joined(separator: "\u{0}")
        return keyed.withLockedValue { counters in
            if let counter = counters[key] { return counter }
            let counter = Counter(label: label, dimensions: dimensions, factory: factory)
            counters[key] = counter
            return counter
        }
    }
}
