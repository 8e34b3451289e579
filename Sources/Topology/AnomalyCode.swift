/// What can be wrong with a cluster, as the topology analysis names it. Each code has a runbook,
/// `runbooks/<rawValue>.md`.
public enum AnomalyCode: String, Hashable, Sendable, Codable, CaseIterable {
    /// No server qualifies as primary.
    case noPrimary = "no-primary"
    /// The primary (the server the replicas follow) cannot be probed.
    case primaryUnreachable = "primary-unreachable"
    /// The primary is read-only: the cluster accepts no writes.
    case primaryReadOnly = "primary-read-only"
    /// More than one server accepts writes: a split-brain risk.
    case multipleWritable = "multiple-writable"
    /// A replica's source is not the primary (chained, or following a stale primary).
    case replicaOfNonPrimary = "replica-of-non-primary"
    /// A replication thread is stopped without an error.
    case replicationStopped = "replication-stopped"
    /// A replication thread stopped on an error (`Last_IO_Errno` / `Last_SQL_Errno`).
    case replicationBroken = "replication-broken"
    /// A replica holds transactions the primary never had (errant GTIDs).
    case errantGTID = "errant-gtid"
    /// A replica (or standalone server) cannot be probed.
    case serverUnreachable = "server-unreachable"
    /// A configured server that is not the primary does not replicate from anyone.
    case notReplicating = "not-replicating"
}

/// One finding of the analysis: a code, the server it concerns (nil for cluster-wide findings) and a
/// sentence an operator can act on.
public struct Anomaly: Hashable, Sendable, Codable {
    public var code: AnomalyCode
    public var server: String?
    public var message: String

    public init(code: AnomalyCode, server: String?, message: String) {
        self.code = code
        self.server = server
        self.message = message
    }
}
