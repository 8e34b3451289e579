/// Replication lag of one replica as the controller measured it.
public struct LagReport: Hashable, Sendable {
    /// Controller clock now − controller clock when the newest heartbeat the replica applied was written.
    /// nil when the replica has no heartbeat row yet.
    public var heartbeatLagMillis: Int64?
    /// GTID distance to the primary, summed over domains; nil when the primary's position is unknown.
    public var transactionsBehind: UInt64?
    /// The server's own `Seconds_Behind_Master`, for reference (nil when the SQL thread is stopped).
    public var secondsBehindMaster: Int?
    /// Statistics over the history window; nil until a sample exists.
    public var window: LagWindow.Statistics?
    /// Recent heartbeat lag samples, oldest first (for sparklines).
    public var recentMillis: [Int64]

    public init(
        heartbeatLagMillis: Int64?, transactionsBehind: UInt64?, secondsBehindMaster: Int?,
        window: LagWindow.Statistics?, recentMillis: [Int64]
    ) {
        self.heartbeatLagMillis = heartbeatLagMillis
        self.transactionsBehind = transactionsBehind
        self.secondsBehindMaster = secondsBehindMaster
        self.window = window
        self.recentMillis = recentMillis
    }
}

/// One server in a snapshot.
public struct ServerSnapshot: Hashable, Sendable {
    public var identity: ServerIdentity
    public var role: Role
    /// Name (or address) of the server it replicates from.
    public var source: String?
    /// The latest observation (nil before the first probe finished).
    public var observation: Observation?
    /// Controller wall clock (µs) of the last successful probe.
    public var lastSeenMicros: Int64?
    public var lag: LagReport?

    public init(
        identity: ServerIdentity, role: Role, source: String?, observation: Observation?, lastSeenMicros: Int64?,
        lag: LagReport?
    ) {
        self.identity = identity
        self.role = role
        self.source = source
        self.observation = observation
        self.lastSeenMicros = lastSeenMicros
        self.lag = lag
    }

    public var state: InstanceState? { observation?.state }
    public var replicaStatus: ReplicaStatus? { state?.replication.first }

    /// The error an operator should see first: unreachable reason, else replication error.
    public var lastError: String? {
        if case .unreachable(let reason)? = observation?.result { return reason }
        return replicaStatus?.lastError
    }
}

/// The controller's whole view of the cluster at one moment: what the proxy, the API and the CLI read.
public struct ClusterSnapshot: Hashable, Sendable {
    public var cluster: String
    /// Bumped on every promotion.
    public var epoch: UInt64
    public var primary: String?
    public var servers: [ServerSnapshot]
    public var anomalies: [Anomaly]
    /// Controller wall clock (µs) when this snapshot was made.
    public var generatedAtMicros: Int64

    public init(
        cluster: String, epoch: UInt64, primary: String?, servers: [ServerSnapshot], anomalies: [Anomaly],
        generatedAtMicros: Int64
    ) {
        self.cluster = cluster
        self.epoch = epoch
        self.primary = primary
        self.servers = servers
        self.anomalies = anomalies
        self.generatedAtMicros = generatedAtMicros
    }

    public func server(named name: String) -> ServerSnapshot? { servers.first { $0.identity.name == name } }
}
