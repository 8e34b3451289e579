import Testing
import Topology

@Suite("Replica status rows and binlog coordinates")
struct ReplicaStatusTests {
    /// A `SHOW ALL SLAVES STATUS` row of a healthy replica, as MariaDB 10.11 returns it (NULL columns are nil).
    private static func healthyRow() -> [String: String?] {
        [
            "Connection_name": "",
            "Slave_SQL_State": "Slave has read all relay log; waiting for more updates",
            "Slave_IO_State": "Waiting for master to send event",
            "Master_Host": "127.0.0.1",
            "Master_User": "repl",
            "Master_Port": "3311",
            "Connect_Retry": "60",
            "Master_Log_File": "mariadb-bin.000010",
            "Read_Master_Log_Pos": "1234567",
            "Relay_Log_File": "mariadb-relay-bin.000004",
            "Relay_Log_Pos": "1200",
            "Relay_Master_Log_File": "mariadb-bin.000009",
            "Slave_IO_Running": "Yes",
            "Slave_SQL_Running": "Yes",
            "Last_Errno": "0",
            "Last_Error": "",
            "Skip_Counter": "0",
            "Exec_Master_Log_Pos": "987654",
            "Relay_Log_Space": "2048",
            "Seconds_Behind_Master": "3",
            "Last_IO_Errno": "0",
            "Last_IO_Error": "",
            "Last_SQL_Errno": "0",
            "Last_SQL_Error": "",
            "Master_Server_Id": "1",
            "Using_Gtid": "Slave_Pos",
            "Gtid_IO_Pos": "0-1-100,1-2-5",
            "Parallel_Mode": "optimistic",
            "SQL_Delay": "0",
            "SQL_Remaining_Delay": nil,
            "Slave_SQL_Running_State": "Slave has read all relay log; waiting for more updates",
            "Retried_transactions": "0",
            "Executed_log_entries": "4242",
        ]
    }

    private static func row(_ changes: [String: String?]) -> [String: String?] {
        healthyRow().merging(changes) { _, new in new }
    }

    @Test func healthyRowBecomesTypedValues() throws {
        let status = try ReplicaStatus(row: Self.healthyRow())
        #expect(status.connectionName == "")
        #expect(status.sourceHost == "127.0.0.1")
        #expect(status.sourcePort == 3311)
        #expect(status.ioThread == .yes)
        #expect(status.sqlThread == .yes)
        #expect(status.lastIOErrno == 0)
        #expect(status.lastIOError == "")
        #expect(status.lastSQLErrno == 0)
        #expect(status.lastSQLError == "")
        #expect(status.secondsBehindMaster == 3)
        #expect(status.gtidIOPos == (try MariaDBGTIDList(parsing: "0-1-100,1-2-5")))
        #expect(status.readSourceLog == BinlogCoordinates(file: "mariadb-bin.000010", position: 1_234_567))
        #expect(status.execSourceLog == BinlogCoordinates(file: "mariadb-bin.000009", position: 987_654))
        #expect(status.relayLogSpace == 2048)
        #expect(status.usingGTID == "Slave_Pos")
        #expect(status.isHealthy)
        #expect(status.lastError == nil)
    }

    @Test func namedConnectionIsKept() throws {
        let status = try ReplicaStatus(row: Self.row(["Connection_name": "east"]))
        #expect(status.connectionName == "east")
    }

    @Test func nullSecondsBehindMasterIsNil() throws {
        let status = try ReplicaStatus(row: Self.row(["Seconds_Behind_Master": nil]))
        #expect(status.secondsBehindMaster == nil)
    }

    @Test func absentOptionalColumnsTakeDefaults() throws {
        var minimal: [String: String?] = ["Master_Host": "127.0.0.1", "Master_Port": "3311"]
        minimal["Gtid_IO_Pos"] = .some(nil)
        let status = try ReplicaStatus(row: minimal)
        #expect(status.connectionName == "")
        #expect(status.ioThread == .no)
        #expect(status.sqlThread == .no)
        #expect(status.lastIOErrno == 0)
        #expect(status.secondsBehindMaster == nil)
        #expect(status.gtidIOPos.isEmpty)
        #expect(status.readSourceLog == BinlogCoordinates(file: "", position: 0))
        #expect(status.relayLogSpace == 0)
        #expect(status.usingGTID == "")
    }

    @Test func connectingIOThread() throws {
        let status = try ReplicaStatus(
            row: Self.row([
                "Slave_IO_Running": "Connecting",
                "Slave_IO_State": "Connecting to master",
                "Last_IO_Errno": "2003",
                "Last_IO_Error": "error reconnecting to master 'repl@127.0.0.1:3311' - retry-time: 60  "
                    + "maximum-retries: 100000  message: Can't connect to server on '127.0.0.1' "
                    + "(111 \"Connection refused\")",
                "Seconds_Behind_Master": nil,
            ]))
        #expect(status.ioThread == .connecting)
        #expect(!status.ioThread.isRunning)
        #expect(status.sqlThread == .yes)
        #expect(!status.isHealthy)
        #expect(status.lastIOErrno == 2003)
        #expect(status.secondsBehindMaster == nil)
        let error = try #require(status.lastError)
        #expect(error.hasPrefix("IO thread error 2003: error reconnecting to master"))
    }

    @Test func brokenSQLThreadReportsItsError() throws {
        let message =
            "Could not execute Write_rows_v1 event on table shop.orders; Duplicate entry '42' for key "
            + "'PRIMARY', Error_code: 1062; handler error HA_ERR_FOUND_DUPP_KEY; the event's master log "
            + "mariadb-bin.000009, end_log_pos 4567"
        let status = try ReplicaStatus(
            row: Self.row([
                "Slave_SQL_Running": "No",
                "Last_Errno": "1062",
                "Last_Error": message,
                "Last_SQL_Errno": "1062",
                "Last_SQL_Error": message,
                "Seconds_Behind_Master": nil,
            ]))
        #expect(status.ioThread == .yes)
        #expect(status.sqlThread == .no)
        #expect(!status.isHealthy)
        #expect(status.lastSQLErrno == 1062)
        #expect(status.lastSQLError == message)
        #expect(status.lastError == "SQL thread error 1062: \(message)")
    }

    @Test func stoppedWithoutErrorHasNoLastError() throws {
        let status = try ReplicaStatus(
            row: Self.row(["Slave_IO_Running": "No", "Slave_SQL_Running": "No", "Seconds_Behind_Master": nil]))
        #expect(!status.isHealthy)
        #expect(status.lastError == nil)
    }

    @Test(arguments: [
        ("Yes", ReplicationThreadState.yes), ("yes", .yes), ("No", .no), ("Connecting", .connecting),
        ("Preparing", .preparing), ("", .no), ("Something new", .no),
    ])
    func threadStates(_ reported: String, _ expected: ReplicationThreadState) {
        #expect(ReplicationThreadState(reported: reported) == expected)
    }

    @Test func nullThreadStateIsNo() {
        #expect(ReplicationThreadState(reported: nil) == .no)
    }

    // MARK: Row errors

    @Test func badMasterPortThrowsNamingTheColumn() throws {
        let error = try #require(throws: ReplicaStatus.RowError.self) {
            try ReplicaStatus(row: Self.row(["Master_Port": "33o6"]))
        }
        #expect(error == ReplicaStatus.RowError(column: "Master_Port", value: "33o6"))
        #expect(error.description.contains("Master_Port"))
        #expect(error.description.contains("'33o6'"))
    }

    @Test func nullMasterPortThrows() throws {
        let error = try #require(throws: ReplicaStatus.RowError.self) {
            try ReplicaStatus(row: Self.row(["Master_Port": nil]))
        }
        #expect(error.column == "Master_Port")
        #expect(error.value == nil)
        #expect(error.description.contains("NULL"))
    }

    @Test func missingMasterHostThrows() throws {
        var row = Self.healthyRow()
        row.removeValue(forKey: "Master_Host")
        let error = try #require(throws: ReplicaStatus.RowError.self) { try ReplicaStatus(row: row) }
        #expect(error.column == "Master_Host")
    }

    @Test(arguments: [
        ("Last_IO_Errno", "-1"), ("Last_SQL_Errno", "x"), ("Read_Master_Log_Pos", "12.5"),
        ("Exec_Master_Log_Pos", "abc"), ("Relay_Log_Space", "1e3"), ("Seconds_Behind_Master", "soon"),
        ("Gtid_IO_Pos", "0-1"),
    ])
    func badNumericOrGTIDColumnThrowsNamingIt(_ column: String, _ value: String) throws {
        let error = try #require(throws: ReplicaStatus.RowError.self) {
            try ReplicaStatus(row: Self.row([column: value]))
        }
        #expect(error == ReplicaStatus.RowError(column: column, value: value))
    }

    // MARK: Binlog coordinates

    @Test func binlogFilesOrderByNumberNotText() {
        let ninth = BinlogCoordinates(file: "mariadb-bin.000009", position: 9_999_999)
        let tenth = BinlogCoordinates(file: "mariadb-bin.000010", position: 4)
        #expect(ninth < tenth)
        #expect(!(tenth < ninth))
        #expect(ninth.fileNumber == 9)
        #expect(tenth.fileNumber == 10)
    }

    @Test func numberOrderBeatsTextOrderPastSixDigits() {
        // mariadb-bin.999999 is followed by mariadb-bin.1000000, which sorts lower as text.
        #expect(
            BinlogCoordinates(file: "mariadb-bin.999999", position: 100)
                < BinlogCoordinates(file: "mariadb-bin.1000000", position: 4))
    }

    @Test func sameFileOrdersByPosition() {
        let early = BinlogCoordinates(file: "mariadb-bin.000010", position: 4)
        let late = BinlogCoordinates(file: "mariadb-bin.000010", position: 1234)
        #expect(early < late)
        #expect(!(late < early))
        #expect(!(early < early))
        #expect([late, early].sorted() == [early, late])
    }

    @Test func sortsAMixOfFiles() {
        let coordinates = [
            BinlogCoordinates(file: "mariadb-bin.000010", position: 4),
            BinlogCoordinates(file: "mariadb-bin.000002", position: 900),
            BinlogCoordinates(file: "mariadb-bin.000009", position: 50),
            BinlogCoordinates(file: "mariadb-bin.000009", position: 10),
        ]
        #expect(
            coordinates.sorted().map(\.description) == [
                "mariadb-bin.000002:900", "mariadb-bin.000009:10", "mariadb-bin.000009:50", "mariadb-bin.000010:4",
            ])
    }

    @Test func filesWithoutNumberFallBackToTextOrder() {
        let plain = BinlogCoordinates(file: "binlog", position: 1)
        #expect(plain.fileNumber == nil)
        #expect(BinlogCoordinates(file: "a-bin", position: 9) < BinlogCoordinates(file: "b-bin", position: 1))
    }
}
