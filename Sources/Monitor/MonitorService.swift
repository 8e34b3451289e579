public import Logging
public import ServiceLifecycle
import Topology

/// The controller's monitoring as one `Service`: a poller per server and the heartbeat writer, all
/// stopped on graceful shutdown.
public struct MonitorService: Service {
    public let store: TopologyStore
    private let pollers: [ServerPoller]
    private let heartbeat: HeartbeatLoop?
    private let logger: Logger

    public init(store: TopologyStore, pollers: [ServerPoller], heartbeat: HeartbeatLoop?, logger: Logger) {
        self.store = store
        self.pollers = pollers
        self.heartbeat = heartbeat
        self.logger = logger
    }

    public func run() async throws {
        logger.debug("monitor starting", metadata: ["sy_servers": "\(pollers.count)"])
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                for poller in pollers { group.addTask { await poller.run() } }
                if let heartbeat { group.addTask { await heartbeat.run() } }
            }
        }
        logger.debug("monitor stopped")
    }
}
