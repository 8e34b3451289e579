import Synchronization
public import Topology

/// Probes one server over a kept-open libmariadb connection (opened again on the next probe after any
/// failure; a connection whose operation timed out is not replaced until that operation returns, so a
/// hung server ties up at most one thread).
public final class MariaDBInstanceProbe: InstanceProbe {
    public let server: ServerIdentity
    private let options: ConnectionOptions
    private let heartbeatTable: String?
    private let connection = Mutex<MariaDBConnection?>(nil)

    /// - Parameter heartbeatTable: `schema.table` of the controller's heartbeat, read on every probe.
    public init(server: ServerIdentity, options: ConnectionOptions, heartbeatTable: String?) {
        self.server = server
        self.options = options
        self.heartbeatTable = heartbeatTable
    }

    /// Opening a connection (TCP, TLS handshake, login) may take up to `max(deadline, 1 s)`; the queries
    /// then have `deadline` of their own. A server that hangs on an open connection is caught by the query
    /// deadline; one that hangs before answering a new connection, by the connect deadline.
    public func probe(deadline: Duration) async throws -> InstanceState {
        let connection = try await usableConnection(deadline: max(deadline, .seconds(1)))
        let heartbeatTable = self.heartbeatTable
        do {
            return try await connection.withSession(deadline: deadline) { session throws(MariaDBError) in
                try Self.collect(session, heartbeatTable: heartbeatTable)
            }
        } catch {
            // Start the next probe on a fresh session: a server-side error (a missing grant, say) may be
            // fixed by then, and MariaDB applies privilege changes to new connections only.
            connection.close()
            throw error
        }
    }

    private func usableConnection(deadline: Duration) async throws(MariaDBError) -> MariaDBConnection {
        let existing = connection.withLock { $0 }
        if let existing, !existing.isClosed {
            return existing  // a busy connection fails fast with `.busy` in the caller
        }
        let fresh = MariaDBConnection(options: options)
        connection.withLock { $0 = fresh }
        try await fresh.open(deadline: deadline)
        return fresh
    }

    public func close() async {
        connection.withLock { $0 }?.close()
    }

    static func collect(_ session: borrowing BlockingSession, heartbeatTable: String?) throws(MariaDBError)
        -> InstanceState
    {
        let clock = ContinuousClock()
        let start = clock.now
        let variables = try session.query(
            "SELECT @@version AS version, @@version_comment AS version_comment, @@server_id AS server_id, "
                + "@@read_only AS read_only, @@gtid_binlog_pos AS binlog_pos, @@gtid_current_pos AS current_pos, "
                + "@@gtid_slave_pos AS slave_pos, @@gtid_binlog_state AS binlog_state")
        let roundTrip = clock.now - start
        guard let row = variables.rows.first else {
            throw MariaDBError(code: .query, message: "server returned no row for its variables", server: "")
        }
        let version = row["version"] ?? ""
        let binlog = try session.query("SHOW MASTER STATUS").rows.first.flatMap { row -> BinlogCoordinates? in
            guard let file = row["File"], let position = row["Position"].flatMap({ UInt64($0) }) else { return nil }
            return BinlogCoordinates(file: file, position: position)
        }
        var replication: [ReplicaStatus] = []
        for statusRow in try session.query("SHOW ALL SLAVES STATUS").rows {
            do {
                replication.append(try ReplicaStatus(row: statusRow.dictionary))
            } catch {
                throw MariaDBError(code: .query, message: error.description, server: "")
            }
        }
        var heartbeat: HeartbeatRow?
        if let heartbeatTable {
            do {
                let rows = try session.query("SELECT seq, written_us FROM \(heartbeatTable) WHERE id = 1").rows
                if let row = rows.first, let seq = row["seq"].flatMap({ UInt64($0) }),
                    let written = row["written_us"].flatMap({ Int64($0) })
                {
                    heartbeat = HeartbeatRow(sequence: seq, writtenAtMicros: written)
                }
            } catch  where error.errno == 1146 || error.errno == 1049 || error.errno == 1142 {
                heartbeat = nil  // no heartbeat table (yet) on this server, or no grant to read it
            }
        }
        func gtids(_ column: String) throws(MariaDBError) -> MariaDBGTIDList {
            do { return try MariaDBGTIDList(parsing: row[column] ?? "") } catch {
                throw MariaDBError(code: .query, message: error.description, server: "")
            }
        }
        return InstanceState(
            version: version,
            flavor: ServerFlavor(version: version, versionComment: row["version_comment"] ?? ""),
            serverID: UInt32(row["server_id"] ?? "") ?? 0,
            readOnly: (row["read_only"] ?? "0") != "0",
            gtidBinlogPos: try gtids("binlog_pos"),
            gtidCurrentPos: try gtids("current_pos"),
            gtidSlavePos: try gtids("slave_pos"),
            gtidBinlogState: try gtids("binlog_state"),
            binlog: binlog,
            replication: replication,
            heartbeat: heartbeat,
            roundTripMicros: roundTrip.wholeMicroseconds
        )
    }
}
