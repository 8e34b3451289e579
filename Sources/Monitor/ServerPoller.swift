public import Logging
public import Topology

/// Probes one server on a fixed cadence, each probe bounded by its deadline, and records every result.
/// One poller per server, each in its own task: a hung server never delays the others.
public struct ServerPoller: Sendable {
    public let probe: any InstanceProbe
    public let store: TopologyStore
    public let interval: Duration
    public let timeout: Duration
    public let wallClock: WallClock
    public let logger: Logger

    public init(
        probe: any InstanceProbe, store: TopologyStore, interval: Duration, timeout: Duration,
        wallClock: WallClock = .system, logger: Logger
    ) {
        self.probe = probe
        self.store = store
        self.interval = interval
        self.timeout = timeout
        self.wallClock = wallClock
        self.logger = logger
    }

    /// Probes once and records the result.
    public func probeOnce() async -> Observation {
        let clock = ContinuousClock()
        let startedAt = wallClock.nowMicros()
        let start = clock.now
        let result: Observation.Result
        do {
            result = .reachable(try await probe.probe(deadline: timeout))
        } catch {
            result = .unreachable(reason: "\(error)")
        }
        let elapsed = clock.now - start
        let observation = Observation(
            server: probe.server, observedAtMicros: startedAt,
            durationMicros: elapsed.wholeMicroseconds, result: result)
        if case .unreachable(let reason) = result {
            logger.debug("probe failed", metadata: [LogKey.server: "\(probe.server.name)", LogKey.error: "\(reason)"])
        }
        await store.record(observation)
        return observation
    }

    /// Runs until the task is cancelled.
    public func run() async {
        await repeatEvery(interval) { _ = await probeOnce() }
        await probe.close()
    }
}

/// Logging metadata keys of the controller, in one place.
public enum LogKey {
    public static let server = "sy_server"
    public static let error = "sy_error"
    public static let sequence = "sy_heartbeat_seq"
}
