import Logging
import Monitor
import TestSupport
import Testing
import Topology

@Suite("ServerPoller")
struct ServerPollerTests {
    static let primary = ServerIdentity(name: "s1", host: "127.0.0.1", port: 3311)
    static let replica = ServerIdentity(name: "s2", host: "127.0.0.1", port: 3312)

    @Test("a hung server is marked unreachable after one deadline and never slows the other server's probes")
    func hungServerDoesNotDelayOthers() async throws {
        let store = TopologyStore(cluster: "t", servers: [Self.primary, Self.replica], lagWindow: .seconds(60))
        let healthy = FakeInstanceProbe(
            server: Self.primary, behavior: .answer(InstanceState(serverID: 1, readOnly: false)))
        let hung = FakeInstanceProbe(server: Self.replica, behavior: .hang)
        let interval = Duration.milliseconds(100)
        let timeout = Duration.milliseconds(80)
        let pollers = [healthy, hung].map {
            ServerPoller(probe: $0, store: store, interval: interval, timeout: timeout, logger: Logger(label: "test"))
        }
        let service = MonitorService(store: store, pollers: pollers, heartbeat: nil, logger: Logger(label: "test"))
        let task = Task { try await service.run() }
        defer { task.cancel() }

        // Polls (with a deadline) for the state the test expects rather than reading it once: on a loaded
        // machine a starved healthy probe can miss its 80 ms deadline now and then, and recovers at the next.
        let clock = ContinuousClock()
        let start = clock.now
        var snapshot = await store.snapshot(nowMicros: 0)
        while clock.now - start < .seconds(10) {
            snapshot = await store.snapshot(nowMicros: 0)
            if hung.probeCount >= 5, snapshot.server(named: "s2")?.role == .unreachable,
                snapshot.server(named: "s1")?.role == .primary
            {
                break
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(hung.probeCount >= 5)
        #expect(snapshot.server(named: "s2")?.role == .unreachable)
        #expect(snapshot.server(named: "s2")?.lastError?.contains("did not finish") == true)
        #expect(snapshot.server(named: "s1")?.role == .primary)
        // Both pollers tick on the same cadence: the hung server costs its own probes time, not the others'.
        // (Counts are read at an arbitrary moment, so the healthy poller may be one tick from its next probe.)
        #expect(healthy.probeCount + 1 >= hung.probeCount, "healthy \(healthy.probeCount), hung \(hung.probeCount)")
        task.cancel()
        _ = await task.result

        // A server that answers again is reachable at its next probe.
        hung.setBehavior(.answer(InstanceState(serverID: 2, readOnly: true)))
        let poller = ServerPoller(
            probe: hung, store: store, interval: interval, timeout: timeout, logger: Logger(label: "test"))
        let observation = await poller.probeOnce()
        #expect(observation.state?.serverID == 2)
    }
}
