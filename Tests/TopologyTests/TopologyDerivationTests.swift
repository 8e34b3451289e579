import Foundation
import Testing
import Topology

/// Three servers on 127.0.0.1:3311…3313, observed in code.
private enum Fixture {
    static let s1 = ServerIdentity(name: "s1", host: "127.0.0.1", port: 3311)
    static let s2 = ServerIdentity(name: "s2", host: "127.0.0.1", port: 3312)
    static let s3 = ServerIdentity(name: "s3", host: "127.0.0.1", port: 3313)
    static let servers = [s1, s2, s3]

    static func gtids(_ text: String) -> MariaDBGTIDList {
        // Fixture text is written by hand; a typo should fail loudly.
        guard let list = try? MariaDBGTIDList(parsing: text) else { fatalError("bad fixture GTID list \(text)") }
        return list
    }

    static func replicating(
        from source: ServerIdentity, io: ReplicationThreadState = .yes, sql: ReplicationThreadState = .yes,
        ioErrno: Int = 0, ioError: String = "", sqlErrno: Int = 0, sqlError: String = ""
    ) -> ReplicaStatus {
        ReplicaStatus(
            sourceHost: source.host, sourcePort: source.port, ioThread: io, sqlThread: sql, lastIOErrno: ioErrno,
            lastIOError: ioError, lastSQLErrno: sqlErrno, lastSQLError: sqlError,
            secondsBehindMaster: io == .yes && sql == .yes ? 0 : nil)
    }

    static func reachable(
        _ server: ServerIdentity, serverID: UInt32, readOnly: Bool, state: String = "0-1-100",
        replication: [ReplicaStatus] = []
    ) -> Observation {
        let list = gtids(state)
        return Observation(
            server: server, observedAtMicros: 1_700_000_000_000_000, durationMicros: 1_500,
            result: .reachable(
                InstanceState(
                    serverID: serverID, readOnly: readOnly, gtidBinlogPos: list, gtidCurrentPos: list,
                    gtidBinlogState: list, replication: replication)))
    }

    static func unreachable(_ server: ServerIdentity, reason: String) -> Observation {
        Observation(
            server: server, observedAtMicros: 1_700_000_000_000_000, durationMicros: 400_000,
            result: .unreachable(reason: reason))
    }

    static func primary(state: String = "0-1-100") -> Observation {
        reachable(s1, serverID: 1, readOnly: false, state: state)
    }

    static func replica(
        _ server: ServerIdentity, serverID: UInt32, of source: ServerIdentity = s1, state: String = "0-1-100",
        status: ReplicaStatus? = nil
    ) -> Observation {
        reachable(
            server, serverID: serverID, readOnly: true, state: state,
            replication: [status ?? replicating(from: source)])
    }

    static func derive(_ observations: [Observation], previousPrimary: String? = nil) -> DerivedTopology {
        TopologyDerivation.derive(
            servers: servers,
            observations: Dictionary(uniqueKeysWithValues: observations.map { ($0.server.name, $0) }),
            previousPrimary: previousPrimary)
    }

    static var healthy: [Observation] {
        [primary(), replica(s2, serverID: 2), replica(s3, serverID: 3)]
    }
}

extension DerivedTopology {
    fileprivate func anomalies(_ code: AnomalyCode) -> [Anomaly] { anomalies.filter { $0.code == code } }
    fileprivate var codes: [AnomalyCode] { anomalies.map(\.code) }
}

@Suite("Topology derivation")
struct TopologyDerivationTests {
    @Test func healthyCluster() {
        let topology = Fixture.derive(Fixture.healthy)
        #expect(topology.primary == "s1")
        #expect(topology.roles == ["s1": .primary, "s2": .replica, "s3": .replica])
        #expect(topology.sources == ["s2": "s1", "s3": "s1"])
        #expect(topology.anomalies.isEmpty)
    }

    @Test func healthyClusterWithReplicasLagging() {
        // Replicas behind the primary hold nothing the primary lacks.
        let topology = Fixture.derive([
            Fixture.primary(state: "0-1-120"),
            Fixture.replica(Fixture.s2, serverID: 2, state: "0-1-90"),
            Fixture.replica(Fixture.s3, serverID: 3, state: "0-1-120"),
        ])
        #expect(topology.primary == "s1")
        #expect(topology.anomalies.isEmpty)
    }

    @Test func sourceGivenAsLocalhostResolvesToTheConfiguredServer() {
        let status = ReplicaStatus(sourceHost: "localhost", sourcePort: 3311, ioThread: .yes, sqlThread: .yes)
        let topology = Fixture.derive([
            Fixture.primary(), Fixture.replica(Fixture.s2, serverID: 2, status: status),
            Fixture.replica(Fixture.s3, serverID: 3),
        ])
        #expect(topology.sources["s2"] == "s1")
        #expect(topology.anomalies.isEmpty)
    }

    @Test func replicaWithBrokenSQLThread() throws {
        let status = Fixture.replicating(
            from: Fixture.s1, sql: .no, sqlErrno: 1062,
            sqlError: "Could not execute Write_rows_v1 event on table shop.orders; "
                + "Duplicate entry '42' for key 'PRIMARY'")
        let topology = Fixture.derive([
            Fixture.primary(), Fixture.replica(Fixture.s2, serverID: 2, status: status),
            Fixture.replica(Fixture.s3, serverID: 3),
        ])
        #expect(topology.primary == "s1")
        #expect(topology.roles["s2"] == .replica)
        #expect(topology.codes == [.replicationBroken])
        let anomaly = try #require(topology.anomalies.first)
        #expect(anomaly.server == "s2")
        #expect(anomaly.message.contains("1062"))
        #expect(anomaly.message.contains("Duplicate entry"))
    }

    @Test func replicaStoppedWithoutError() throws {
        let status = Fixture.replicating(from: Fixture.s1, io: .no, sql: .no)
        let topology = Fixture.derive([
            Fixture.primary(), Fixture.replica(Fixture.s2, serverID: 2),
            Fixture.replica(Fixture.s3, serverID: 3, status: status),
        ])
        #expect(topology.roles["s3"] == .replica)
        #expect(topology.sources["s3"] == "s1")
        #expect(topology.codes == [.replicationStopped])
        let anomaly = try #require(topology.anomalies.first)
        #expect(anomaly.server == "s3")
        #expect(anomaly.message.contains("IO thread No, SQL thread No"))
    }

    @Test func twoWritableServers() throws {
        // s2 is a replica of s1 but someone set read_only=OFF on it.
        let s2 = Fixture.reachable(
            Fixture.s2, serverID: 2, readOnly: false, replication: [Fixture.replicating(from: Fixture.s1)])
        let topology = Fixture.derive([Fixture.primary(), s2, Fixture.replica(Fixture.s3, serverID: 3)])
        #expect(topology.primary == "s1")
        #expect(topology.roles == ["s1": .primary, "s2": .replica, "s3": .replica])
        #expect(topology.codes == [.multipleWritable])
        let anomaly = try #require(topology.anomalies.first)
        #expect(anomaly.server == nil)
        #expect(anomaly.message.contains("s1, s2"))
    }

    @Test func twoWritableRootsPicksTheOneTheReplicasFollow() {
        // Split brain: s2 was detached and made writable; s3 still follows s1.
        let s2 = Fixture.reachable(Fixture.s2, serverID: 2, readOnly: false)
        let topology = Fixture.derive([Fixture.primary(), s2, Fixture.replica(Fixture.s3, serverID: 3)])
        #expect(topology.primary == "s1")
        #expect(topology.roles["s2"] == .standalone)
        #expect(Set(topology.codes) == [.multipleWritable, .notReplicating])
    }

    @Test func twoWritableRootsWithoutVotesKeepThePreviousPrimary() {
        let s2 = Fixture.reachable(Fixture.s2, serverID: 2, readOnly: false)
        let observations = [Fixture.primary(), s2, Fixture.reachable(Fixture.s3, serverID: 3, readOnly: true)]
        #expect(Fixture.derive(observations, previousPrimary: "s2").primary == "s2")
        #expect(Fixture.derive(observations, previousPrimary: "s1").primary == "s1")
    }

    @Test func errantTransactionOnAReplica() throws {
        // Someone wrote on s2 directly: 0-2-7 carries s2's own server_id and the primary never had it.
        let topology = Fixture.derive([
            Fixture.primary(state: "0-1-100"),
            Fixture.replica(Fixture.s2, serverID: 2, state: "0-1-100,0-2-7"),
            Fixture.replica(Fixture.s3, serverID: 3),
        ])
        #expect(topology.primary == "s1")
        #expect(topology.codes == [.errantGTID])
        let anomaly = try #require(topology.anomalies.first)
        #expect(anomaly.server == "s2")
        #expect(anomaly.message.contains("0-2-7"))
        #expect(!anomaly.message.contains("0-1-100"))
    }

    @Test func errantTransactionAheadOfWhatThePrimaryHasFromThatServer() throws {
        // The primary replicated 0-2-5 from s2 long ago; s2 now has 0-2-7, which the primary lacks.
        let topology = Fixture.derive([
            Fixture.primary(state: "0-1-100,0-2-5"),
            Fixture.replica(Fixture.s2, serverID: 2, state: "0-1-100,0-2-7"),
            Fixture.replica(Fixture.s3, serverID: 3, state: "0-1-100,0-2-5"),
        ])
        #expect(topology.anomalies(.errantGTID).map(\.server) == ["s2"])
    }

    @Test func higherSequenceOfThePrimarysOwnServerIdIsNotErrant() {
        // The replica's probe was newer than the primary's: it already has 0-1-105, which the primary wrote.
        let topology = Fixture.derive([
            Fixture.primary(state: "0-1-100"),
            Fixture.replica(Fixture.s2, serverID: 2, state: "0-1-105"),
            Fixture.replica(Fixture.s3, serverID: 3, state: "0-1-100"),
        ])
        #expect(topology.anomalies.isEmpty)
    }

    @Test func primaryUnreachable() throws {
        let refused = Fixture.replicating(
            from: Fixture.s1, io: .connecting, ioErrno: 2003,
            ioError: "error reconnecting to master 'repl@127.0.0.1:3311' - retry-time: 60  maximum-retries: 100000  "
                + "message: Can't connect to server on '127.0.0.1' (111 \"Connection refused\")")
        let topology = Fixture.derive([
            Fixture.unreachable(Fixture.s1, reason: "Can't connect to server on '127.0.0.1' (111)"),
            Fixture.replica(Fixture.s2, serverID: 2, status: refused),
            Fixture.replica(Fixture.s3, serverID: 3, status: refused),
        ])
        #expect(topology.primary == "s1")
        #expect(topology.roles == ["s1": .unreachable, "s2": .replica, "s3": .replica])
        #expect(topology.sources == ["s2": "s1", "s3": "s1"])
        let down = topology.anomalies(.primaryUnreachable)
        #expect(down.count == 1)
        #expect(down.first?.server == "s1")
        #expect(down.first?.message.contains("127.0.0.1:3311") == true)
        #expect(down.first?.message.contains("(111)") == true)
        #expect(topology.anomalies(.serverUnreachable).isEmpty)
        #expect(topology.anomalies(.noPrimary).isEmpty)
        // The replicas' IO threads are retrying with an error: that is reported per replica.
        #expect(topology.anomalies(.replicationBroken).map(\.server) == ["s2", "s3"])
        #expect(topology.anomalies(.replicationBroken).allSatisfy { $0.message.contains("2003") })
        #expect(topology.anomalies(.errantGTID).isEmpty)
    }

    @Test func deadPrimaryNobodyFollowsIsRememberedFromThePreviousDerivation() {
        // Replicas have been reset: nothing points at s1 any more, but it was the primary.
        let topology = Fixture.derive(
            [
                Fixture.unreachable(Fixture.s1, reason: "timed out"),
                Fixture.reachable(Fixture.s2, serverID: 2, readOnly: true),
                Fixture.reachable(Fixture.s3, serverID: 3, readOnly: true),
            ], previousPrimary: "s1")
        #expect(topology.primary == "s1")
        #expect(topology.anomalies(.primaryUnreachable).map(\.server) == ["s1"])
        #expect(topology.anomalies(.notReplicating).map(\.server) == ["s2", "s3"])
    }

    @Test func unreachableReplica() throws {
        let topology = Fixture.derive([
            Fixture.primary(), Fixture.replica(Fixture.s2, serverID: 2),
            Fixture.unreachable(Fixture.s3, reason: "Access denied for user 'switchyard'@'127.0.0.1'"),
        ])
        #expect(topology.primary == "s1")
        #expect(topology.roles["s3"] == .unreachable)
        #expect(topology.sources["s3"] == nil)
        #expect(topology.codes == [.serverUnreachable])
        let anomaly = try #require(topology.anomalies.first)
        #expect(anomaly.server == "s3")
        #expect(anomaly.message.contains("Access denied"))
    }

    @Test func configuredServerNotReplicating() throws {
        let topology = Fixture.derive([
            Fixture.primary(), Fixture.replica(Fixture.s2, serverID: 2),
            Fixture.reachable(Fixture.s3, serverID: 3, readOnly: true),
        ])
        #expect(topology.primary == "s1")
        #expect(topology.roles["s3"] == .standalone)
        #expect(topology.sources["s3"] == nil)
        #expect(topology.codes == [.notReplicating])
        let anomaly = try #require(topology.anomalies.first)
        #expect(anomaly.server == "s3")
        #expect(anomaly.message.contains("expected a replica of s1"))
    }

    @Test func replicaOfANonPrimary() throws {
        let topology = Fixture.derive([
            Fixture.primary(), Fixture.replica(Fixture.s2, serverID: 2),
            Fixture.replica(Fixture.s3, serverID: 3, of: Fixture.s2),
        ])
        #expect(topology.primary == "s1")
        #expect(topology.roles == ["s1": .primary, "s2": .replica, "s3": .replica])
        #expect(topology.sources == ["s2": "s1", "s3": "s2"])
        #expect(topology.codes == [.replicaOfNonPrimary])
        let anomaly = try #require(topology.anomalies.first)
        #expect(anomaly.server == "s3")
        #expect(anomaly.message.contains("s2"))
        #expect(anomaly.message.contains("primary s1"))
    }

    @Test func replicaOfAnUnconfiguredServerNamesItsAddress() {
        let outside = ServerIdentity(name: "x", host: "10.0.0.9", port: 3306)
        let topology = Fixture.derive([
            Fixture.primary(), Fixture.replica(Fixture.s2, serverID: 2),
            Fixture.replica(Fixture.s3, serverID: 3, of: outside),
        ])
        #expect(topology.sources["s3"] == "10.0.0.9:3306")
        #expect(topology.anomalies(.replicaOfNonPrimary).map(\.server) == ["s3"])
    }

    @Test func readOnlyPrimary() {
        let topology = Fixture.derive([
            Fixture.reachable(Fixture.s1, serverID: 1, readOnly: true),
            Fixture.replica(Fixture.s2, serverID: 2), Fixture.replica(Fixture.s3, serverID: 3),
        ])
        #expect(topology.primary == "s1")
        #expect(topology.roles["s1"] == .primary)
        #expect(topology.codes == [.primaryReadOnly])
    }

    @Test func noObservationsYet() {
        let topology = Fixture.derive([])
        #expect(topology.primary == nil)
        #expect(topology.roles == ["s1": .unreachable, "s2": .unreachable, "s3": .unreachable])
        #expect(topology.sources.isEmpty)
        #expect(topology.anomalies(.serverUnreachable).map(\.server) == ["s1", "s2", "s3"])
        #expect(topology.anomalies(.serverUnreachable).allSatisfy { $0.message.contains("not probed yet") })
        #expect(topology.anomalies(.noPrimary).count == 1)
        #expect(topology.anomalies(.noPrimary).first?.server == nil)
        #expect(topology.anomalies(.primaryUnreachable).isEmpty)
    }

    @Test func noObservationsYetButAPreviousPrimary() {
        let topology = Fixture.derive([], previousPrimary: "s1")
        #expect(topology.primary == "s1")
        #expect(topology.anomalies(.primaryUnreachable).map(\.server) == ["s1"])
        #expect(topology.anomalies(.serverUnreachable).map(\.server) == ["s2", "s3"])
        #expect(topology.anomalies(.noPrimary).isEmpty)
    }

    @Test func previousPrimaryThatIsNoLongerConfiguredIsIgnored() {
        #expect(Fixture.derive([], previousPrimary: "old").primary == nil)
    }

    @Test func allReadOnlyAndNotReplicatingHasNoPrimary() {
        let topology = Fixture.derive(
            Fixture.servers.enumerated().map { index, server in
                Fixture.reachable(server, serverID: UInt32(index + 1), readOnly: true)
            })
        #expect(topology.primary == nil)
        #expect(topology.roles == ["s1": .standalone, "s2": .standalone, "s3": .standalone])
        #expect(topology.anomalies(.noPrimary).count == 1)
        #expect(topology.anomalies(.notReplicating).count == 3)
    }

    @Test func resolveMatchesLoopbackSpellings() {
        for host in ["127.0.0.1", "localhost", "LOCALHOST", "::1"] {
            #expect(TopologyDerivation.resolve(host: host, port: 3312, among: Fixture.servers) == Fixture.s2)
        }
        #expect(TopologyDerivation.resolve(host: "127.0.0.1", port: 3306, among: Fixture.servers) == nil)
        #expect(TopologyDerivation.resolve(host: "10.0.0.1", port: 3311, among: Fixture.servers) == nil)
    }

    @Test(arguments: AnomalyCode.allCases)
    func everyAnomalyCodeHasARunbook(_ code: AnomalyCode) {
        let root = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()  // TopologyTests
            .deletingLastPathComponent()  // Tests
            .deletingLastPathComponent()  // package root
        let runbook = root.appendingPathComponent("runbooks").appendingPathComponent("\(code.rawValue).md")
        #expect(FileManager.default.fileExists(atPath: runbook.path), "missing runbook \(runbook.path)")
    }
}
