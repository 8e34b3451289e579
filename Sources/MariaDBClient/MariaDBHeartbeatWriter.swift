import Synchronization
public import Topology

/// Writes the controller's heartbeat row with its own account (one without READ_ONLY ADMIN, so it can
/// never write on a read-only replica). Creates the schema and table when missing.
public final class MariaDBHeartbeatWriter: HeartbeatWriting {
    private let optionsFor: @Sendable (ServerIdentity) -> ConnectionOptions
    private let schema: String
    private let table: String
    private let state = Mutex<(server: ServerIdentity, connection: MariaDBConnection, prepared: Bool)?>(nil)

    public init(schema: String, table: String, options: @escaping @Sendable (ServerIdentity) -> ConnectionOptions) {
        self.schema = schema
        self.table = table
        self.optionsFor = options
    }

    public func writeHeartbeat(_ row: HeartbeatRow, on server: ServerIdentity, deadline: Duration) async throws {
        let clock = ContinuousClock()
        let start = clock.now
        var current = state.withLock { $0 }
        if let existing = current, existing.server != server || existing.connection.isClosed {
            existing.connection.close()
            current = nil
        }
        if current == nil {
            let connection = MariaDBConnection(options: optionsFor(server))
            state.withLock { $0 = (server, connection, false) }
            try await connection.open(deadline: deadline)
            current = (server, connection, false)
        }
        guard let current else { return }
        let qualified = "`\(schema)`.`\(table)`"
        let schema = self.schema
        let prepared = current.prepared
        try await current.connection.withSession(deadline: deadline - (clock.now - start)) {
            session throws(MariaDBError) in
            if !prepared {
                try session.execute("CREATE DATABASE IF NOT EXISTS `\(schema)`")
                try session.execute(
                    "CREATE TABLE IF NOT EXISTS \(qualified) (id TINYINT UNSIGNED NOT NULL PRIMARY KEY, "
                        + "seq BIGINT UNSIGNED NOT NULL, written_us BIGINT NOT NULL) ENGINE=InnoDB")
            }
            try session.execute(
                "INSERT INTO \(qualified) (id, seq, written_us) VALUES (1, \(row.sequence), \(row.writtenAtMicros)) "
                    + "ON DUPLICATE KEY UPDATE seq = VALUES(seq), written_us = VALUES(written_us)")
        }
        if !prepared { state.withLock { $0?.prepared = true } }
    }

    public func close() async {
        state.withLock { $0 }?.connection.close()
    }
}
