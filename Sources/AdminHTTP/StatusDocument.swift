public import Topology

/// `GET /v1/status`: the topology snapshot. The CLI's `status --json` prints a stable subset of it.
public struct StatusDocument: Codable, Hashable, Sendable {
    public struct Server: Codable, Hashable, Sendable {
        public var name: String
        public var address: String
        /// `primary`, `replica`, `unreachable` or `standalone`.
        public var role: String
        public var readOnly: Bool?
        public var serverID: UInt32?
        public var version: String?
        public var gtidCurrentPos: String?
        public var gtidBinlogPos: String?
        public var gtidSlavePos: String?
        public var binlogFile: String?
        public var binlogPosition: UInt64?
        /// Name (or `host:port`) of the server it replicates from.
        public var source: String?
        /// `Yes`, `No`, `Connecting` or `Preparing`; null when not a replica.
        public var ioRunning: String?
        public var sqlRunning: String?
        public var secondsBehindMaster: Int?
        public var gtidIOPos: String?
        public var relayLogSpace: UInt64?
        public var lastError: String?
        public var probeRoundTripMillis: Double?
        public var probeDurationMillis: Double?
        /// Milliseconds since the last successful probe.
        public var lastSeenMillisAgo: Int64?

        enum CodingKeys: String, CodingKey {
            case name, address, role, version, source
            case readOnly = "read_only"
            case serverID = "server_id"
            case gtidCurrentPos = "gtid_current_pos"
            case gtidBinlogPos = "gtid_binlog_pos"
            case gtidSlavePos = "gtid_slave_pos"
            case binlogFile = "binlog_file"
            case binlogPosition = "binlog_position"
            case ioRunning = "io_running"
            case sqlRunning = "sql_running"
            case secondsBehindMaster = "seconds_behind_master"
            case gtidIOPos = "gtid_io_pos"
            case relayLogSpace = "relay_log_space"
            case lastError = "last_error"
            case probeRoundTripMillis = "probe_rtt_ms"
            case probeDurationMillis = "probe_duration_ms"
            case lastSeenMillisAgo = "last_seen_ms_ago"
        }
    }

    public struct Finding: Codable, Hashable, Sendable {
        public var code: String
        public var server: String?
        public var message: String
    }

    public var cluster: String
    public var epoch: UInt64
    public var primary: String?
    /// Controller wall clock, milliseconds since the Unix epoch.
    public var generatedAtMillis: Int64
    public var servers: [Server]
    public var anomalies: [Finding]
    /// The SQL proxy's counters; null when the proxy is not enabled.
    public var proxy: Proxy?

    /// The SQL proxy's counters since the controller started.
    public struct Proxy: Codable, Hashable, Sendable {
        public var listen: String
        public var primary: String?
        public var connectionsCurrent: Int
        public var connectionsTotal: Int
        public var statementsTotal: Int
        public var bytesFromClients: Int
        public var bytesToClients: Int
        public var errorsTotal: Int
        public var failedLogins: Int
        /// Sessions moved to a new server connection between statements, and sessions ended because they
        /// could not move (runbooks/proxy.md, "Failover and lost server connections").
        public var sessionsMoved: Int
        public var sessionsEnded: Int

        public init(
            listen: String, primary: String?, connectionsCurrent: Int, connectionsTotal: Int, statementsTotal: Int,
            bytesFromClients: Int, bytesToClients: Int, errorsTotal: Int, failedLogins: Int, sessionsMoved: Int = 0,
            sessionsEnded: Int = 0
        ) {
            self.listen = listen
            self.primary = primary
            self.connectionsCurrent = connectionsCurrent
            self.connectionsTotal = connectionsTotal
            self.statementsTotal = statementsTotal
            self.bytesFromClients = bytesFromClients
            self.bytesToClients = bytesToClients
            self.errorsTotal = errorsTotal
            self.failedLogins = failedLogins
            self.sessionsMoved = sessionsMoved
            self.sessionsEnded = sessionsEnded
        }

        enum CodingKeys: String, CodingKey {
            case listen, primary
            case connectionsCurrent = "connections_current"
            case connectionsTotal = "connections_total"
            case statementsTotal = "statements_total"
            case bytesFromClients = "bytes_from_clients"
            case bytesToClients = "bytes_to_clients"
            case errorsTotal = "errors_total"
            case failedLogins = "failed_logins"
            case sessionsMoved = "sessions_moved"
            case sessionsEnded = "sessions_ended"
        }
    }

    enum CodingKeys: String, CodingKey {
        case cluster, epoch, primary, servers, anomalies, proxy
        case generatedAtMillis = "generated_at_ms"
    }

    public init(_ snapshot: ClusterSnapshot, proxy: Proxy? = nil) {
        self.proxy = proxy
        cluster = snapshot.cluster
        epoch = snapshot.epoch
        primary = snapshot.primary
        generatedAtMillis = snapshot.generatedAtMicros / 1000
        anomalies = snapshot.anomalies.map { Finding(code: $0.code.rawValue, server: $0.server, message: $0.message) }
        servers = snapshot.servers.map { view in
            let state = view.state
            let status = view.replicaStatus
            return Server(
                name: view.identity.name,
                address: view.identity.address,
                role: view.role.rawValue,
                readOnly: state?.readOnly,
                serverID: state?.serverID,
                version: state?.version,
                gtidCurrentPos: state?.gtidCurrentPos.description,
                gtidBinlogPos: state?.gtidBinlogPos.description,
                gtidSlavePos: state?.gtidSlavePos.description,
                binlogFile: state?.binlog?.file,
                binlogPosition: state?.binlog?.position,
                source: view.source,
                ioRunning: status?.ioThread.rawValue,
                sqlRunning: status?.sqlThread.rawValue,
                secondsBehindMaster: status?.secondsBehindMaster,
                gtidIOPos: status?.gtidIOPos.description,
                relayLogSpace: status?.relayLogSpace,
                lastError: view.lastError,
                probeRoundTripMillis: state.map { Double($0.roundTripMicros) / 1000 },
                probeDurationMillis: view.observation.map { Double($0.durationMicros) / 1000 },
                lastSeenMillisAgo: view.lastSeenMicros.map { max(0, snapshot.generatedAtMicros - $0) / 1000 })
        }
    }
}

/// `GET /v1/lag`: per replica, lag now and over the history window. Seconds, millisecond resolution.
public struct LagDocument: Codable, Hashable, Sendable {
    public struct Replica: Codable, Hashable, Sendable {
        public var name: String
        /// Heartbeat lag now; null until the replica has applied a heartbeat.
        public var lagSeconds: Double?
        public var p50: Double?
        public var p99: Double?
        public var max: Double?
        public var samples: Int
        public var transactionsBehind: UInt64?
        public var secondsBehindMaster: Int?
        public var ioRunning: String?
        public var sqlRunning: String?
        /// Recent heartbeat lag samples in seconds, oldest first.
        public var recent: [Double]

        enum CodingKeys: String, CodingKey {
            case name, p50, p99, max, samples, recent
            case lagSeconds = "lag_seconds"
            case transactionsBehind = "transactions_behind"
            case secondsBehindMaster = "seconds_behind_master"
            case ioRunning = "io_running"
            case sqlRunning = "sql_running"
        }
    }

    public var windowSeconds: Double
    public var replicas: [Replica]

    enum CodingKeys: String, CodingKey {
        case replicas
        case windowSeconds = "window_seconds"
    }

    public init(_ snapshot: ClusterSnapshot, window: Duration) {
        windowSeconds = Double(window.components.seconds)
        func seconds(_ millis: Int64?) -> Double? { millis.map { Double($0) / 1000 } }
        replicas = snapshot.servers.filter { $0.role == .replica || ($0.role != .primary && $0.lag != nil) }.map {
            view in
            let lag = view.lag
            return Replica(
                name: view.identity.name,
                lagSeconds: seconds(lag?.heartbeatLagMillis),
                p50: seconds(lag?.window?.p50Millis),
                p99: seconds(lag?.window?.p99Millis),
                max: seconds(lag?.window?.maxMillis),
                samples: lag?.window?.count ?? 0,
                transactionsBehind: lag?.transactionsBehind,
                secondsBehindMaster: lag?.secondsBehindMaster,
                ioRunning: view.replicaStatus?.ioThread.rawValue,
                sqlRunning: view.replicaStatus?.sqlThread.rawValue,
                recent: lag?.recentMillis.map { Double($0) / 1000 } ?? [])
        }
    }
}
