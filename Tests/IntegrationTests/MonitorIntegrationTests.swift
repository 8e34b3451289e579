import Foundation
import Logging
import MariaDBClient
import Monitor
import Sandbox
import SwitchyardConfiguration
import SwitchyardServer
import Testing
import Topology

#if canImport(Glibc)
    import Glibc
#endif

extension IntegrationTests {
    @Test("a healthy sandbox cluster: one primary, two healthy replicas, heartbeat lag measured, no anomalies")
    func healthyClusterStatus() async throws {
        try await ClusterFixture.with { cluster in
            let controller = try cluster.controller()
            try await withMonitor(controller) {
                try await poll("healthy topology with lag", deadline: .seconds(15)) {
                    let snapshot = await controller.snapshot()
                    let replicasMeasured = ["s2", "s3"].allSatisfy {
                        snapshot.server(named: $0)?.lag?.heartbeatLagMillis != nil
                    }
                    return snapshot.primary == "s1" && snapshot.anomalies.isEmpty && replicasMeasured
                }
                let snapshot = await controller.snapshot()
                #expect(snapshot.server(named: "s1")?.role == .primary)
                #expect(snapshot.server(named: "s1")?.state?.readOnly == false)
                for name in ["s2", "s3"] {
                    let server = try #require(snapshot.server(named: name))
                    #expect(server.role == .replica)
                    #expect(server.source == "s1")
                    #expect(server.state?.readOnly == true)
                    #expect(server.replicaStatus?.ioThread == .yes)
                    #expect(server.replicaStatus?.sqlThread == .yes)
                    #expect(server.lag?.transactionsBehind != nil)
                }
                let primaryState = try #require(snapshot.server(named: "s1")?.state)
                #expect(primaryState.serverID == 1)
                #expect(primaryState.binlog != nil)
                #expect(!primaryState.gtidBinlogPos.isEmpty)
            }
        }
    }

    @Test(
        "stopping a replica's SQL thread while writes continue shows lag > 2 s within 4 s; restarting brings it under 0.5 s"
    )
    func lagFollowsStoppedSQLThread() async throws {
        try await ClusterFixture.with { cluster in
            let controller = try cluster.controller()
            try await withMonitor(controller) {
                try await poll("s2 measured", deadline: .seconds(15)) {
                    await controller.snapshot().server(named: "s2")?.lag?.heartbeatLagMillis != nil
                }
                // Application writes continue besides the heartbeat.
                let writer = Task {
                    let connection = try await MariaDBConnection.connect(try cluster.appOptions("s1"))
                    try await connection.execute(
                        "CREATE TABLE IF NOT EXISTS t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
                    while !Task.isCancelled {
                        try await connection.execute("INSERT INTO t (v) VALUES (1)")
                        try await Task.sleep(for: .milliseconds(50))
                    }
                    connection.close()
                }
                defer { writer.cancel() }
                try await cluster.rootSQL("s2", "STOP SLAVE SQL_THREAD")
                let rose = try await poll("s2 lag above 2 s", deadline: .seconds(4)) {
                    (await controller.snapshot().server(named: "s2")?.lag?.heartbeatLagMillis ?? 0) > 2000
                }
                let s3Lag = await controller.snapshot().server(named: "s3")?.lag?.heartbeatLagMillis ?? .max
                #expect(s3Lag < 1000, "the healthy replica s3 must not be reported lagging")
                let stopped = await controller.snapshot()
                #expect(stopped.anomalies.contains { $0.code == .replicationStopped && $0.server == "s2" })
                #expect((stopped.server(named: "s2")?.lag?.transactionsBehind ?? 0) > 0)
                try await cluster.rootSQL("s2", "START SLAVE SQL_THREAD")
                try await poll("s2 lag under 0.5 s", deadline: .seconds(5)) {
                    (await controller.snapshot().server(named: "s2")?.lag?.heartbeatLagMillis ?? .max) < 500
                }
                let window = try #require(await controller.snapshot().server(named: "s2")?.lag?.window)
                #expect(window.maxMillis > 2000, "the window keeps the episode's peak")
                writer.cancel()
                _ = await writer.result
                print("lag rose above 2 s after \(rose)")
            }
        }
    }

    @Test("a SIGSTOPped replica is unreachable within 2 s while the other servers keep being probed")
    func hungReplicaDetected() async throws {
        try await ClusterFixture.with { cluster in
            let controller = try cluster.controller()
            try await withMonitor(controller) {
                try await poll("healthy", deadline: .seconds(15)) {
                    await controller.snapshot().servers.allSatisfy { $0.role != .unreachable }
                }
                let s3 = cluster.instance("s3")
                #expect(ProcessControl.signal(s3.pid, SIGSTOP, marker: s3.defaultsFile))
                #expect(ProcessControl.waitUntilStopped(s3.pid, timeout: 5))
                defer { _ = ProcessControl.signal(s3.pid, SIGCONT, marker: s3.defaultsFile) }
                let detected = try await poll("s3 unreachable", deadline: .seconds(2), every: .milliseconds(20)) {
                    await controller.snapshot().server(named: "s3")?.role == .unreachable
                }
                // Keep watching for a few probe intervals: the others stay fresh and reachable.
                for _ in 0..<6 {
                    try await Task.sleep(for: .milliseconds(250))
                    let snapshot = await controller.snapshot()
                    for name in ["s1", "s2"] {
                        let server = try #require(snapshot.server(named: name))
                        #expect(server.role != .unreachable)
                        let age = snapshot.generatedAtMicros - (server.lastSeenMicros ?? 0)
                        #expect(age < 1_200_000, "\(name) last probed \(age / 1000) ms ago")
                    }
                    #expect(snapshot.server(named: "s3")?.role == .unreachable)
                }
                let reason = await controller.snapshot().server(named: "s3")?.lastError ?? ""
                #expect(!reason.isEmpty)
                print("s3 unreachable after \(detected): \(reason)")
                #expect(ProcessControl.signal(s3.pid, SIGCONT, marker: s3.defaultsFile))
                try await poll("s3 back", deadline: .seconds(10)) {
                    await controller.snapshot().server(named: "s3")?.role == .replica
                }
            }
        }
    }

    @Test("a server that is down and a wrong password are reported by name while the rest is served")
    func badServersReportedOthersServed() async throws {
        try await ClusterFixture.with(servers: 2) { cluster in
            let deadPort = try freePortRange(count: 1)
            let controller = try cluster.controller { config in
                config.servers.append(.init(name: "ghost", host: "127.0.0.1", port: deadPort))
            }
            try await withMonitor(controller) {
                try await poll("s1 primary, s2 replica, ghost unreachable", deadline: .seconds(15)) {
                    let snapshot = await controller.snapshot()
                    return snapshot.primary == "s1" && snapshot.server(named: "s2")?.role == .replica
                        && snapshot.server(named: "ghost")?.observation != nil
                }
                let snapshot = await controller.snapshot()
                let ghost = try #require(snapshot.server(named: "ghost"))
                #expect(ghost.role == .unreachable)
                #expect(ghost.lastError?.contains("127.0.0.1:\(deadPort)") == true)
                #expect(snapshot.anomalies.contains { $0.code == .serverUnreachable && $0.server == "ghost" })
            }
            // The same cluster with a wrong monitor password: each server is unreachable with error 1045.
            let environment = ["SY_WRONG": "not-the-password"]
            var config = try cluster.config()
            config.credentials.monitor?.password = .environment("SY_WRONG")
            config.heartbeat.enabled = false
            let wrong = try Controller(
                config: config, logger: .init(label: "test"), resolver: .init(environment: environment))
            _ = try await withMonitor(wrong) {
                try await poll("access denied reported", deadline: .seconds(10)) {
                    await wrong.snapshot().servers.allSatisfy { $0.lastError?.contains("1045") == true }
                }
            }
        }
    }
}
