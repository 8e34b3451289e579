import Monitor
import Testing
import Topology

/// Servers and observations for a three-server cluster on 127.0.0.1:3311…3313.
private enum Cluster {
    static let s1 = ServerIdentity(name: "s1", host: "127.0.0.1", port: 3311)
    static let s2 = ServerIdentity(name: "s2", host: "127.0.0.1", port: 3312)
    static let s3 = ServerIdentity(name: "s3", host: "127.0.0.1", port: 3313)
    static let servers = [s1, s2, s3]

    static let t0: Int64 = 1_700_000_000_000_000  // µs since the epoch
    static let milli: Int64 = 1_000

    static func gtids(_ text: String) -> MariaDBGTIDList {
        guard let list = try? MariaDBGTIDList(parsing: text) else { fatalError("bad fixture GTID list \(text)") }
        return list
    }

    static func store(heartbeatInterval: Duration = .milliseconds(250)) -> TopologyStore {
        TopologyStore(
            cluster: "shop", servers: servers, lagWindow: .seconds(600), heartbeatInterval: heartbeatInterval)
    }

    static func primary(at micros: Int64 = t0, binlogPos: String = "0-1-100") -> Observation {
        Observation(
            server: s1, observedAtMicros: micros, durationMicros: 1_000,
            result: .reachable(
                InstanceState(
                    serverID: 1, readOnly: false, gtidBinlogPos: gtids(binlogPos), gtidCurrentPos: gtids(binlogPos),
                    gtidBinlogState: gtids(binlogPos))))
    }

    static func replica(
        _ server: ServerIdentity, serverID: UInt32, at micros: Int64 = t0, currentPos: String = "0-1-100",
        heartbeat: HeartbeatRow? = nil, secondsBehind: Int? = 0
    ) -> Observation {
        let status = ReplicaStatus(
            sourceHost: s1.host, sourcePort: s1.port, ioThread: .yes, sqlThread: .yes,
            secondsBehindMaster: secondsBehind)
        return Observation(
            server: server, observedAtMicros: micros, durationMicros: 1_000,
            result: .reachable(
                InstanceState(
                    serverID: serverID, readOnly: true, gtidBinlogPos: gtids(currentPos),
                    gtidCurrentPos: gtids(currentPos), gtidSlavePos: gtids(currentPos),
                    gtidBinlogState: gtids(currentPos), replication: [status], heartbeat: heartbeat)))
    }

    static func unreachable(_ server: ServerIdentity, at micros: Int64) -> Observation {
        Observation(
            server: server, observedAtMicros: micros, durationMicros: 400_000,
            result: .unreachable(reason: "probe timed out after 400ms"))
    }

    /// Heartbeat rows 1…4, written every 250 ms from t0.
    static let rows: [HeartbeatRow] = (0..<4).map {
        HeartbeatRow(sequence: UInt64($0 + 1), writtenAtMicros: t0 + Int64($0) * 250 * milli)
    }

    static func writeRows(_ store: TopologyStore) async {
        for row in rows { await store.heartbeatWritten(row, on: s1) }
    }
}

@Suite("Topology store")
struct TopologyStoreTests {
    @Test func beforeAnyObservationEverythingIsUnreachable() async {
        let store = Cluster.store()
        let snapshot = await store.snapshot(nowMicros: Cluster.t0)
        #expect(snapshot.cluster == "shop")
        #expect(snapshot.epoch == 1)
        #expect(snapshot.primary == nil)
        #expect(snapshot.generatedAtMicros == Cluster.t0)
        #expect(snapshot.servers.map(\.identity) == Cluster.servers)
        #expect(snapshot.servers.allSatisfy { $0.role == .unreachable && $0.observation == nil && $0.lag == nil })
        #expect(snapshot.anomalies.contains { $0.code == .noPrimary })
        #expect(await store.reachablePrimary == nil)
        #expect(await store.primary() == nil)
    }

    @Test func healthyCluster() async throws {
        let store = Cluster.store()
        await store.record(Cluster.primary())
        await store.record(Cluster.replica(Cluster.s2, serverID: 2, at: Cluster.t0 + 10))
        await store.record(Cluster.replica(Cluster.s3, serverID: 3, at: Cluster.t0 + 20))
        let snapshot = await store.snapshot(nowMicros: Cluster.t0 + 1_000)

        #expect(snapshot.primary == "s1")
        #expect(snapshot.anomalies.isEmpty)
        #expect(snapshot.servers.map(\.role) == [.primary, .replica, .replica])
        #expect(snapshot.servers.map(\.source) == [nil, "s1", "s1"])
        #expect(snapshot.servers.map(\.lastSeenMicros) == [Cluster.t0, Cluster.t0 + 10, Cluster.t0 + 20])
        #expect(await store.reachablePrimary == Cluster.s1)
        #expect(await store.primary()?.server == Cluster.s1)
        #expect(await store.primary()?.state?.version == Cluster.primary().state?.version)

        let primary = try #require(snapshot.server(named: "s1"))
        #expect(primary.lag == nil)  // the primary replicates from no one
        let replica = try #require(snapshot.server(named: "s2"))
        #expect(replica.replicaStatus?.sourcePort == 3311)
        let lag = try #require(replica.lag)
        #expect(lag.heartbeatLagMillis == nil)  // no heartbeat written yet
        #expect(lag.transactionsBehind == 0)
        #expect(lag.secondsBehindMaster == 0)
        #expect(lag.window == nil)
        #expect(lag.recentMillis.isEmpty)
    }

    @Test func heartbeatLagIsMeasuredFromTheFirstRowTheReplicaLacks() async throws {
        let store = Cluster.store()
        await Cluster.writeRows(store)
        let status = await store.heartbeat
        #expect(status.lastSequence == 4)
        #expect(status.lastWrittenMicros == Cluster.t0 + 750 * Cluster.milli)
        #expect(status.server == "s1")
        #expect(status.lastError == nil)

        await store.record(Cluster.primary(at: Cluster.t0 + 800 * Cluster.milli))
        let observedAt = Cluster.t0 + 900 * Cluster.milli
        await store.record(Cluster.replica(Cluster.s2, serverID: 2, at: observedAt, heartbeat: Cluster.rows[1]))

        let lag = try #require(await store.snapshot(nowMicros: observedAt).server(named: "s2")?.lag)
        let expected = (observedAt - Cluster.rows[2].writtenAtMicros) / 1_000
        #expect(expected == 400)
        #expect(lag.heartbeatLagMillis == expected)
        let window = try #require(lag.window)
        #expect(window.count == 1)
        #expect(window.p50Millis == expected)
        #expect(window.maxMillis == expected)
        #expect(lag.recentMillis == [expected])
    }

    @Test func caughtUpReplicaHasZeroHeartbeatLag() async throws {
        let store = Cluster.store()
        await Cluster.writeRows(store)
        await store.record(Cluster.primary(at: Cluster.t0 + 800 * Cluster.milli))
        await store.record(
            Cluster.replica(Cluster.s2, serverID: 2, at: Cluster.t0 + 900 * Cluster.milli, heartbeat: Cluster.rows[3]))
        let lag = try #require(await store.snapshot(nowMicros: Cluster.t0 + Cluster.milli).server(named: "s2")?.lag)
        #expect(lag.heartbeatLagMillis == 0)
    }

    @Test func stoppedHeartbeatWriterShowsAsGrowingLag() async throws {
        let store = Cluster.store(heartbeatInterval: .milliseconds(250))  // stale after 1 s
        await Cluster.writeRows(store)
        let observedAt = Cluster.t0 + 10_750 * Cluster.milli
        await store.record(Cluster.replica(Cluster.s2, serverID: 2, at: observedAt, heartbeat: Cluster.rows[3]))
        let lag = try #require(await store.snapshot(nowMicros: observedAt).server(named: "s2")?.lag)
        #expect(lag.heartbeatLagMillis == 10_000)
    }

    @Test func heartbeatLagIsNotMeasuredBeforeThisControllerWroteARow() async throws {
        let store = Cluster.store()
        // The replica still holds a row a previous controller wrote long ago.
        let old = HeartbeatRow(sequence: 77, writtenAtMicros: Cluster.t0 - 3_600_000_000)
        await store.record(Cluster.primary())
        await store.record(Cluster.replica(Cluster.s2, serverID: 2, heartbeat: old))
        let lag = try #require(await store.snapshot(nowMicros: Cluster.t0).server(named: "s2")?.lag)
        #expect(lag.heartbeatLagMillis == nil)
        #expect(lag.window == nil)
    }

    @Test func restartedWriterSequenceStartsANewHistory() async throws {
        let store = Cluster.store()
        await Cluster.writeRows(store)
        // A new writer restarts at sequence 1, later: the old rows must not be mixed in.
        let restart = Cluster.t0 + 5_000 * Cluster.milli
        await store.heartbeatWritten(HeartbeatRow(sequence: 1, writtenAtMicros: restart), on: Cluster.s1)
        await store.heartbeatWritten(
            HeartbeatRow(sequence: 2, writtenAtMicros: restart + 250 * Cluster.milli), on: Cluster.s1)
        let observedAt = restart + 400 * Cluster.milli
        await store.record(
            Cluster.replica(
                Cluster.s2, serverID: 2, at: observedAt,
                heartbeat: HeartbeatRow(sequence: 1, writtenAtMicros: restart)))
        let lag = try #require(await store.snapshot(nowMicros: observedAt).server(named: "s2")?.lag)
        #expect(lag.heartbeatLagMillis == 150)
    }

    @Test func transactionsBehindComparesThePrimarysBinlogPosWithTheReplicasCurrentPos() async throws {
        let store = Cluster.store()
        await store.record(Cluster.primary(binlogPos: "0-1-120,1-1-40"))
        await store.record(Cluster.replica(Cluster.s2, serverID: 2, currentPos: "0-1-100,1-1-40", secondsBehind: 7))
        await store.record(Cluster.replica(Cluster.s3, serverID: 3, currentPos: "0-1-120,1-1-38"))
        let snapshot = await store.snapshot(nowMicros: Cluster.t0)
        let s2 = try #require(snapshot.server(named: "s2")?.lag)
        #expect(s2.transactionsBehind == 20)
        #expect(s2.secondsBehindMaster == 7)
        #expect(snapshot.server(named: "s3")?.lag?.transactionsBehind == 2)
    }

    @Test func transactionsBehindIsUnknownWhileThePrimaryIsUnreachable() async throws {
        let store = Cluster.store()
        await store.record(Cluster.primary())
        await store.record(Cluster.replica(Cluster.s2, serverID: 2))
        await store.record(Cluster.unreachable(Cluster.s1, at: Cluster.t0 + 1_000))
        let snapshot = await store.snapshot(nowMicros: Cluster.t0 + 2_000)
        #expect(snapshot.primary == "s1")
        #expect(snapshot.server(named: "s1")?.role == .unreachable)
        #expect(snapshot.server(named: "s1")?.lastError == "probe timed out after 400ms")
        #expect(snapshot.server(named: "s1")?.lastSeenMicros == Cluster.t0)
        #expect(snapshot.anomalies.contains { $0.code == .primaryUnreachable && $0.server == "s1" })
        #expect(snapshot.server(named: "s2")?.lag?.transactionsBehind == nil)
        #expect(await store.reachablePrimary == nil)
    }

    @Test func unreachableReplicaKeepsItsLagWindow() async throws {
        let store = Cluster.store()
        await Cluster.writeRows(store)
        await store.record(Cluster.primary(at: Cluster.t0 + 800 * Cluster.milli))
        let firstSeen = Cluster.t0 + 900 * Cluster.milli
        await store.record(Cluster.replica(Cluster.s2, serverID: 2, at: firstSeen, heartbeat: Cluster.rows[1]))
        await store.record(
            Cluster.replica(Cluster.s2, serverID: 2, at: firstSeen + 50 * Cluster.milli, heartbeat: Cluster.rows[3]))
        await store.record(Cluster.replica(Cluster.s3, serverID: 3, at: firstSeen))
        await store.record(Cluster.unreachable(Cluster.s2, at: firstSeen + 500 * Cluster.milli))

        let snapshot = await store.snapshot(nowMicros: firstSeen + 600 * Cluster.milli)
        let s2 = try #require(snapshot.server(named: "s2"))
        #expect(s2.role == .unreachable)
        #expect(s2.lastSeenMicros == firstSeen + 50 * Cluster.milli)
        #expect(s2.lastError == "probe timed out after 400ms")
        let lag = try #require(s2.lag)
        #expect(lag.heartbeatLagMillis == nil)
        #expect(lag.transactionsBehind == nil)
        #expect(lag.secondsBehindMaster == nil)
        #expect(lag.recentMillis == [400, 0])
        let window = try #require(lag.window)
        #expect(window.count == 2)
        #expect(window.maxMillis == 400)
        #expect(snapshot.anomalies.map(\.code) == [.serverUnreachable])
        #expect(snapshot.anomalies.map(\.server) == ["s2"])
    }

    @Test func failedHeartbeatIsReported() async {
        let store = Cluster.store()
        await Cluster.writeRows(store)
        await store.heartbeatFailed("read-only", on: Cluster.s1)
        let status = await store.heartbeat
        #expect(status.lastError == "read-only")
        #expect(status.lastSequence == 4)
        #expect(status.server == "s1")
    }
}
