/// The shape of the cluster derived from one round of observations.
public struct DerivedTopology: Hashable, Sendable {
    /// Name of the primary, when one could be determined (it may be unreachable).
    public var primary: String?
    public var roles: [String: Role]
    /// Replica name → its (first) source: a configured server's name, or `host:port` when the source is
    /// not a configured server.
    public var sources: [String: String]
    public var anomalies: [Anomaly]

    public init(primary: String?, roles: [String: Role], sources: [String: String], anomalies: [Anomaly]) {
        self.primary = primary
        self.roles = roles
        self.sources = sources
        self.anomalies = anomalies
    }
}

/// Pure derivation of roles, replication sources and anomalies from observations.
public enum TopologyDerivation {
    /// - Parameters:
    ///   - servers: the configured servers, in config order.
    ///   - observations: the latest observation per server name (missing = never probed yet).
    ///   - previousPrimary: the primary of the previous derivation, used to keep a dead primary's
    ///     identity when nothing else points at it.
    public static func derive(
        servers: [ServerIdentity],
        observations: [String: Observation],
        previousPrimary: String? = nil
    ) -> DerivedTopology {
        var anomalies: [Anomaly] = []
        var sources: [String: String] = [:]
        var sourceVotes: [String: Int] = [:]

        func state(_ name: String) -> InstanceState? { observations[name]?.state }

        // Who replicates from whom.
        for server in servers {
            guard let status = state(server.name)?.replication.first else { continue }
            let source = resolve(host: status.sourceHost, port: status.sourcePort, among: servers)
            sources[server.name] = source?.name ?? "\(status.sourceHost):\(status.sourcePort)"
            if let source { sourceVotes[source.name, default: 0] += 1 }
        }

        let reachable = servers.filter { state($0.name) != nil }
        let writable = reachable.filter { state($0.name)?.readOnly == false }
        let writableRoots = writable.filter { sources[$0.name] == nil }

        // The primary: the single writable server that replicates from no one; otherwise the server most
        // replicas follow; otherwise the previous primary.
        var primary: String?
        if writableRoots.count == 1 {
            primary = writableRoots[0].name
        } else if writableRoots.count > 1 {
            primary =
                writableRoots.max { (sourceVotes[$0.name] ?? 0) < (sourceVotes[$1.name] ?? 0) }.map(\.name)
            if let previousPrimary, writableRoots.contains(where: { $0.name == previousPrimary }),
                (sourceVotes[previousPrimary] ?? 0) >= (sourceVotes[primary ?? ""] ?? 0)
            {
                primary = previousPrimary
            }
        } else if let voted = sourceVotes.max(by: { ($0.value, $1.key) < ($1.value, $0.key) })?.key {
            primary = voted
        } else if let previousPrimary, servers.contains(where: { $0.name == previousPrimary }) {
            primary = previousPrimary
        }

        if writable.count > 1 {
            let names = writable.map(\.name).joined(separator: ", ")
            anomalies.append(
                Anomaly(
                    code: .multipleWritable, server: nil,
                    message: "\(writable.count) servers accept writes (\(names)): only the primary may be writable"))
        }

        var roles: [String: Role] = [:]
        for server in servers {
            guard let observation = observations[server.name], let serverState = observation.state else {
                roles[server.name] = .unreachable
                let reason: String
                if case .unreachable(let why) = observations[server.name]?.result {
                    reason = why
                } else {
                    reason = "not probed yet"
                }
                if server.name == primary {
                    anomalies.append(
                        Anomaly(
                            code: .primaryUnreachable, server: server.name,
                            message: "primary \(server.name) at \(server.address) is unreachable: \(reason)"))
                } else {
                    anomalies.append(
                        Anomaly(
                            code: .serverUnreachable, server: server.name,
                            message: "\(server.name) at \(server.address) is unreachable: \(reason)"))
                }
                continue
            }
            if server.name == primary {
                roles[server.name] = .primary
                if serverState.readOnly {
                    anomalies.append(
                        Anomaly(
                            code: .primaryReadOnly, server: server.name,
                            message: "primary \(server.name) is read_only=ON: the cluster accepts no writes"))
                }
                continue
            }
            guard let status = serverState.replication.first else {
                roles[server.name] = .standalone
                let expected = primary.map { " (expected a replica of \($0))" } ?? ""
                anomalies.append(
                    Anomaly(
                        code: .notReplicating, server: server.name,
                        message: "\(server.name) is not replicating from any server\(expected)"))
                continue
            }
            roles[server.name] = .replica
            let source = sources[server.name] ?? "?"
            if let primary, source != primary {
                anomalies.append(
                    Anomaly(
                        code: .replicaOfNonPrimary, server: server.name,
                        message: "\(server.name) replicates from \(source), which is not the primary \(primary)"))
            }
            if !status.isHealthy {
                let threads = "IO thread \(status.ioThread.rawValue), SQL thread \(status.sqlThread.rawValue)"
                if let error = status.lastError {
                    anomalies.append(
                        Anomaly(
                            code: .replicationBroken, server: server.name,
                            message: "replication on \(server.name) is broken (\(threads)): \(error)"))
                } else if status.ioThread == .connecting {
                    anomalies.append(
                        Anomaly(
                            code: .replicationStopped, server: server.name,
                            message: "\(server.name) is not receiving from its source \(source) (\(threads))"))
                } else {
                    anomalies.append(
                        Anomaly(
                            code: .replicationStopped, server: server.name,
                            message: "replication on \(server.name) is stopped (\(threads))"))
                }
            }
            if let primary, let primaryState = state(primary) {
                // GTIDs stamped with the primary's own server_id originated there; the primary's probe can
                // simply be older than the replica's, so only foreign server ids can be errant.
                let foreign = MariaDBGTIDList(
                    serverState.gtidBinlogState.gtids.filter { $0.server != primaryState.serverID })
                let errant = primaryState.gtidBinlogState.missing(from: foreign)
                if !errant.isEmpty {
                    let list = errant.map(\.description).joined(separator: ",")
                    anomalies.append(
                        Anomaly(
                            code: .errantGTID, server: server.name,
                            message: "\(server.name) has transactions the primary \(primary) does not have: \(list)"))
                }
            }
        }
        if primary == nil {
            anomalies.append(Anomaly(code: .noPrimary, server: nil, message: "no server qualifies as primary"))
        }
        return DerivedTopology(primary: primary, roles: roles, sources: sources, anomalies: anomalies)
    }

    /// Finds the configured server a replica's `Master_Host:Master_Port` names. Loopback spellings match.
    public static func resolve(host: String, port: Int, among servers: [ServerIdentity]) -> ServerIdentity? {
        func normal(_ host: String) -> String {
            let lower = host.lowercased()
            return ["localhost", "127.0.0.1", "::1"].contains(lower) ? "loopback" : lower
        }
        return servers.first { $0.port == port && normal($0.host) == normal(host) }
    }
}
