/// State of a replication thread as `SHOW ALL SLAVES STATUS` reports it.
public enum ReplicationThreadState: String, Hashable, Sendable, Codable {
    case yes = "Yes"
    case no = "No"
    case connecting = "Connecting"
    case preparing = "Preparing"

    public init(reported: String?) {
        switch reported?.lowercased() {
        case "yes": self = .yes
        case "connecting": self = .connecting
        case "preparing": self = .preparing
        default: self = .no
        }
    }

    public var isRunning: Bool { self == .yes }
}

/// One row of `SHOW ALL SLAVES STATUS` (one replication source) as typed values.
public struct ReplicaStatus: Hashable, Sendable {
    public var connectionName: String
    public var sourceHost: String
    public var sourcePort: Int
    public var ioThread: ReplicationThreadState
    public var sqlThread: ReplicationThreadState
    public var lastIOErrno: Int
    public var lastIOError: String
    public var lastSQLErrno: Int
    public var lastSQLError: String
    public var secondsBehindMaster: Int?
    /// GTIDs received from the source (`Gtid_IO_Pos`).
    public var gtidIOPos: MariaDBGTIDList
    public var readSourceLog: BinlogCoordinates
    public var execSourceLog: BinlogCoordinates
    public var relayLogSpace: UInt64
    public var usingGTID: String

    public init(
        connectionName: String = "",
        sourceHost: String,
        sourcePort: Int,
        ioThread: ReplicationThreadState,
        sqlThread: ReplicationThreadState,
        lastIOErrno: Int = 0,
        lastIOError: String = "",
        lastSQLErrno: Int = 0,
        lastSQLError: String = "",
        secondsBehindMaster: Int? = 0,
        gtidIOPos: MariaDBGTIDList = MariaDBGTIDList(),
        readSourceLog: BinlogCoordinates = BinlogCoordinates(file: "", position: 0),
        execSourceLog: BinlogCoordinates = BinlogCoordinates(file: "", position: 0),
        relayLogSpace: UInt64 = 0,
        usingGTID: String = "Slave_Pos"
    ) {
        self.connectionName = connectionName
        self.sourceHost = sourceHost
        self.sourcePort = sourcePort
        self.ioThread = ioThread
        self.sqlThread = sqlThread
        self.lastIOErrno = lastIOErrno
        self.lastIOError = lastIOError
        self.lastSQLErrno = lastSQLErrno
        self.lastSQLError = lastSQLError
        self.secondsBehindMaster = secondsBehindMaster
        self.gtidIOPos = gtidIOPos
        self.readSourceLog = readSourceLog
        self.execSourceLog = execSourceLog
        self.relayLogSpace = relayLogSpace
        self.usingGTID = usingGTID
    }

    public struct RowError: Error, Hashable, CustomStringConvertible {
        public var column: String
        public var value: String?
        public init(column: String, value: String?) {
            self.column = column
            self.value = value
        }
        public var description: String {
            "SHOW SLAVE STATUS column \(column) has an unexpected value \(value.map { "'\($0)'" } ?? "NULL")"
        }
    }

    /// Builds a status from a row keyed by column name (NULL columns are nil).
    public init(row: [String: String?]) throws(RowError) {
        func text(_ column: String) -> String? { row[column] ?? nil }
        func required(_ column: String) throws(RowError) -> String {
            guard let value = text(column) else { throw RowError(column: column, value: nil) }
            return value
        }
        func integer(_ column: String) throws(RowError) -> UInt64 {
            guard let raw = text(column), !raw.isEmpty else { return 0 }
            guard let value = UInt64(raw) else { throw RowError(column: column, value: raw) }
            return value
        }
        let portText = try required("Master_Port")
        guard let port = Int(portText) else { throw RowError(column: "Master_Port", value: portText) }
        let gtidText = text("Gtid_IO_Pos") ?? ""
        let gtidIOPos: MariaDBGTIDList
        do { gtidIOPos = try MariaDBGTIDList(parsing: gtidText) } catch {
            throw RowError(column: "Gtid_IO_Pos", value: gtidText)
        }
        var secondsBehind: Int? = nil
        if let raw = text("Seconds_Behind_Master") {
            guard let value = Int(raw) else { throw RowError(column: "Seconds_Behind_Master", value: raw) }
            secondsBehind = value
        }
        self.init(
            connectionName: text("Connection_name") ?? "",
            sourceHost: try required("Master_Host"),
            sourcePort: port,
            ioThread: ReplicationThreadState(reported: text("Slave_IO_Running")),
            sqlThread: ReplicationThreadState(reported: text("Slave_SQL_Running")),
            lastIOErrno: Int(try integer("Last_IO_Errno")),
            lastIOError: text("Last_IO_Error") ?? "",
            lastSQLErrno: Int(try integer("Last_SQL_Errno")),
            lastSQLError: text("Last_SQL_Error") ?? "",
            secondsBehindMaster: secondsBehind,
            gtidIOPos: gtidIOPos,
            readSourceLog: BinlogCoordinates(
                file: text("Master_Log_File") ?? "", position: try integer("Read_Master_Log_Pos")),
            execSourceLog: BinlogCoordinates(
                file: text("Relay_Master_Log_File") ?? "", position: try integer("Exec_Master_Log_Pos")),
            relayLogSpace: try integer("Relay_Log_Space"),
            usingGTID: text("Using_Gtid") ?? ""
        )
    }

    /// The replication error an operator should see first (the SQL thread's, then the IO thread's); nil when none.
    public var lastError: String? {
        if lastSQLErrno != 0 { return "SQL thread error \(lastSQLErrno): \(lastSQLError)" }
        if lastIOErrno != 0 { return "IO thread error \(lastIOErrno): \(lastIOError)" }
        return nil
    }

    public var isHealthy: Bool { ioThread.isRunning && sqlThread.isRunning }
}
