/// The newest heartbeat row a server has applied: written by the controller on the primary.
public struct HeartbeatRow: Hashable, Sendable {
    public var sequence: UInt64
    /// Controller wall clock (microseconds since the Unix epoch) when the row was written.
    public var writtenAtMicros: Int64

    public init(sequence: UInt64, writtenAtMicros: Int64) {
        self.sequence = sequence
        self.writtenAtMicros = writtenAtMicros
    }
}

/// Everything one successful probe learned about a server.
public struct InstanceState: Hashable, Sendable {
    public var version: String
    public var flavor: ServerFlavor
    public var serverID: UInt32
    public var readOnly: Bool
    public var gtidBinlogPos: MariaDBGTIDList
    public var gtidCurrentPos: MariaDBGTIDList
    public var gtidSlavePos: MariaDBGTIDList
    public var gtidBinlogState: MariaDBGTIDList
    /// From `SHOW MASTER STATUS`; nil when binary logging is off.
    public var binlog: BinlogCoordinates?
    /// One entry per replication source (`SHOW ALL SLAVES STATUS`).
    public var replication: [ReplicaStatus]
    public var heartbeat: HeartbeatRow?
    /// Round trip of the probe's first query, in microseconds.
    public var roundTripMicros: Int64

    public init(
        version: String = "10.11.0-MariaDB",
        flavor: ServerFlavor = .mariadb,
        serverID: UInt32,
        readOnly: Bool,
        gtidBinlogPos: MariaDBGTIDList = MariaDBGTIDList(),
        gtidCurrentPos: MariaDBGTIDList = MariaDBGTIDList(),
        gtidSlavePos: MariaDBGTIDList = MariaDBGTIDList(),
        gtidBinlogState: MariaDBGTIDList = MariaDBGTIDList(),
        binlog: BinlogCoordinates? = nil,
        replication: [ReplicaStatus] = [],
        heartbeat: HeartbeatRow? = nil,
        roundTripMicros: Int64 = 0
    ) {
        self.version = version
        self.flavor = flavor
        self.serverID = serverID
        self.readOnly = readOnly
        self.gtidBinlogPos = gtidBinlogPos
        self.gtidCurrentPos = gtidCurrentPos
        self.gtidSlavePos = gtidSlavePos
        self.gtidBinlogState = gtidBinlogState
        self.binlog = binlog
        self.replication = replication
        self.heartbeat = heartbeat
        self.roundTripMicros = roundTripMicros
    }
}

/// The outcome of probing one server at one moment.
public struct Observation: Hashable, Sendable {
    public enum Result: Hashable, Sendable {
        case reachable(InstanceState)
        /// The probe failed: `reason` names what went wrong (error text, timeout, refused login…).
        case unreachable(reason: String)
    }

    public var server: ServerIdentity
    /// Controller wall clock (µs since the epoch) when the probe started.
    public var observedAtMicros: Int64
    /// How long the probe took, in microseconds (up to the deadline for a timeout).
    public var durationMicros: Int64
    public var result: Result

    public init(server: ServerIdentity, observedAtMicros: Int64, durationMicros: Int64, result: Result) {
        self.server = server
        self.observedAtMicros = observedAtMicros
        self.durationMicros = durationMicros
        self.result = result
    }

    public var state: InstanceState? {
        if case .reachable(let state) = result { return state }
        return nil
    }
}

/// A port: probes one server. Implemented over libmariadb by `MariaDBClient`, faked in tests.
public protocol InstanceProbe: Sendable {
    var server: ServerIdentity { get }
    /// Probes the server once; must return or throw by `deadline` (a duration from now).
    func probe(deadline: Duration) async throws -> InstanceState
    /// Releases connections.
    func close() async
}

/// A port: writes the controller's heartbeat on the primary.
public protocol HeartbeatWriting: Sendable {
    /// Writes (or overwrites) the single heartbeat row on `server`.
    func writeHeartbeat(_ row: HeartbeatRow, on server: ServerIdentity, deadline: Duration) async throws
    func close() async
}
