public import Logging
public import Topology

/// Writes a heartbeat row on the current primary on a fixed cadence. Replicas apply it through
/// replication; their lag is the controller's clock now minus the controller's clock in the newest row
/// they have applied, so server clock skew never enters the number.
public struct HeartbeatLoop: Sendable {
    public let writer: any HeartbeatWriting
    public let store: TopologyStore
    public let interval: Duration
    public let timeout: Duration
    public let wallClock: WallClock
    public let logger: Logger

    public init(
        writer: any HeartbeatWriting, store: TopologyStore, interval: Duration, timeout: Duration,
        wallClock: WallClock = .system, logger: Logger
    ) {
        self.writer = writer
        self.store = store
        self.interval = interval
        self.timeout = timeout
        self.wallClock = wallClock
        self.logger = logger
    }

    public func run() async {
        // Sequence numbers keep increasing across controller restarts: start from the wall clock.
        var sequence = UInt64(max(0, wallClock.nowMicros() / 1000))
        await repeatEvery(interval) {
            guard let primary = await store.reachablePrimary else { return }
            sequence += 1
            let row = HeartbeatRow(sequence: sequence, writtenAtMicros: wallClock.nowMicros())
            do {
                try await writer.writeHeartbeat(row, on: primary, deadline: timeout)
                await store.heartbeatWritten(row, on: primary)
            } catch {
                logger.debug(
                    "heartbeat write failed", metadata: [LogKey.server: "\(primary.name)", LogKey.error: "\(error)"])
                await store.heartbeatFailed("\(error)", on: primary)
            }
        }
        await writer.close()
    }
}
