public import Topology

/// The controller's current view: the latest observation per server, lag history per replica, and
/// the derived topology. Pollers write into it; the API, the CLI and (later) the proxy read snapshots.
public actor TopologyStore {
    public let cluster: String
    public let servers: [ServerIdentity]
    private let lagWindowLength: Duration
    private let metrics: MonitorMetrics?
    private var observations: [String: Observation] = [:]
    private var lastSeen: [String: Int64] = [:]
    private var lagWindows: [String: LagWindow] = [:]
    private var derived: DerivedTopology
    private var epoch: UInt64 = 1
    private var lastHeartbeat: HeartbeatStatus = HeartbeatStatus()
    /// Heartbeat rows written, oldest first (bounded).
    private var writtenHeartbeats: [HeartbeatRow] = []
    private let heartbeatStaleAfterMicros: Int64
    private static let heartbeatHistoryLimit = 8192

    /// What the heartbeat writer did last.
    public struct HeartbeatStatus: Hashable, Sendable {
        public var lastWrittenMicros: Int64?
        public var lastSequence: UInt64?
        public var lastError: String?
        public var server: String?
    }

    /// - Parameter heartbeatInterval: the writer's cadence; it counts as stopped after 4 missed rows.
    public init(
        cluster: String, servers: [ServerIdentity], lagWindow: Duration,
        heartbeatInterval: Duration = .milliseconds(250),
        metrics: MonitorMetrics? = nil
    ) {
        self.heartbeatStaleAfterMicros = 4 * heartbeatInterval.wholeMicroseconds
        self.cluster = cluster
        self.servers = servers
        self.lagWindowLength = lagWindow
        self.metrics = metrics
        self.derived = TopologyDerivation.derive(servers: servers, observations: [:])
    }

    /// Records one probe result and re-derives the topology.
    public func record(_ observation: Observation) {
        let name = observation.server.name
        observations[name] = observation
        metrics?.record(observation)
        if observation.state != nil {
            lastSeen[name] = observation.observedAtMicros
            if let lagMillis = heartbeatLag(observation) {
                lagWindows[name, default: LagWindow(window: lagWindowLength)]
                    .append(LagWindow.Sample(atMicros: observation.observedAtMicros, lagMillis: lagMillis))
            }
        }
        derived = TopologyDerivation.derive(
            servers: servers, observations: observations, previousPrimary: derived.primary)
        if let metrics {
            for server in servers {
                metrics.record(
                    server: server, role: derived.roles[server.name] ?? .unreachable, lag: lagReport(server.name))
            }
        }
    }

    public func heartbeatWritten(_ row: HeartbeatRow, on server: ServerIdentity) {
        if let last = writtenHeartbeats.last, last.sequence >= row.sequence { writtenHeartbeats.removeAll() }
        writtenHeartbeats.append(row)
        if writtenHeartbeats.count > Self.heartbeatHistoryLimit * 2 {
            writtenHeartbeats.removeFirst(writtenHeartbeats.count - Self.heartbeatHistoryLimit)
        }
        lastHeartbeat = HeartbeatStatus(
            lastWrittenMicros: row.writtenAtMicros, lastSequence: row.sequence, lastError: nil, server: server.name)
        metrics?.heartbeatWritten(success: true)
    }

    public func heartbeatFailed(_ error: String, on server: ServerIdentity?) {
        lastHeartbeat.lastError = error
        lastHeartbeat.server = server?.name
        metrics?.heartbeatWritten(success: false)
    }

    public var heartbeat: HeartbeatStatus { lastHeartbeat }

    /// The primary, if one is known and its last probe succeeded.
    public var reachablePrimary: ServerIdentity? {
        guard let primary = primary(), primary.state != nil else { return nil }
        return primary.server
    }

    private func lagReport(_ name: String) -> LagReport? {
        guard let observation = observations[name], let state = observation.state, let status = state.replication.first
        else {
            guard let window = lagWindows[name] else { return nil }
            return LagReport(
                heartbeatLagMillis: nil, transactionsBehind: nil, secondsBehindMaster: nil,
                window: window.statistics, recentMillis: window.recent(40).map(\.lagMillis))
        }
        let window = lagWindows[name]
        let heartbeatLag = heartbeatLag(observation)
        var behind: UInt64?
        if let primary = derived.primary, primary != name, let primaryState = observations[primary]?.state {
            behind = state.gtidCurrentPos.transactionsBehind(primaryState.gtidBinlogPos)
        }
        return LagReport(
            heartbeatLagMillis: heartbeatLag, transactionsBehind: behind,
            secondsBehindMaster: status.secondsBehindMaster, window: window?.statistics,
            recentMillis: window?.recent(40).map(\.lagMillis) ?? [])
    }

    /// Heartbeat lag of a replica's observation; nil for non-replicas and before a heartbeat arrived.
    private func heartbeatLag(_ observation: Observation) -> Int64? {
        // Until this controller has written a row, the applied row says nothing about the present.
        guard let state = observation.state, !state.replication.isEmpty, let applied = state.heartbeat,
            !writtenHeartbeats.isEmpty
        else { return nil }
        return HeartbeatLag.millis(
            applied: applied, observedAtMicros: observation.observedAtMicros, written: writtenHeartbeats,
            staleAfterMicros: heartbeatStaleAfterMicros)
    }

    /// The current primary and its latest state, without a whole snapshot's lag statistics (the proxy
    /// asks ten times a second).
    public func primary() -> (server: ServerIdentity, state: InstanceState?)? {
        guard let name = derived.primary, let server = servers.first(where: { $0.name == name }) else { return nil }
        return (server, observations[name]?.state)
    }

    /// The current view as one value.
    public func snapshot(nowMicros: Int64) -> ClusterSnapshot {
        let views = servers.map { server in
            ServerSnapshot(
                identity: server,
                role: derived.roles[server.name] ?? .unreachable,
                source: derived.sources[server.name],
                observation: observations[server.name],
                lastSeenMicros: lastSeen[server.name],
                lag: lagReport(server.name))
        }
        return ClusterSnapshot(
            cluster: cluster, epoch: epoch, primary: derived.primary, servers: views, anomalies: derived.anomalies,
            generatedAtMicros: nowMicros)
    }
}
