import Logging
import Monitor
import ServiceLifecycle
import Topology

/// Logs every change in the set of anomalies (appeared at `warning`, cleared at `info`), and primary
/// changes, so an operator reading the controller's log sees what `switchyard status` shows.
struct AnomalyLog: Service {
    let store: TopologyStore
    let interval: Duration
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            var known: Set<Anomaly> = []
            var primary: String?
            while !Task.isCancelled {
                let snapshot = await store.snapshot(nowMicros: WallClock.system.nowMicros())
                // Skip the first rounds where servers are simply "not probed yet".
                if snapshot.servers.allSatisfy({ $0.observation != nil }) {
                    let current = Set(snapshot.anomalies)
                    for anomaly in current.subtracting(known).sorted(by: { $0.message < $1.message }) {
                        logger.warning(
                            "\(anomaly.message)",
                            metadata: [
                                "sy_anomaly": "\(anomaly.code.rawValue)", "sy_server": "\(anomaly.server ?? "-")",
                            ])
                    }
                    for anomaly in known.subtracting(current).sorted(by: { $0.message < $1.message }) {
                        logger.info(
                            "cleared: \(anomaly.message)",
                            metadata: [
                                "sy_anomaly": "\(anomaly.code.rawValue)", "sy_server": "\(anomaly.server ?? "-")",
                            ])
                    }
                    known = current
                    if snapshot.primary != primary {
                        logger.info("primary is \(snapshot.primary ?? "unknown")")
                        primary = snapshot.primary
                    }
                }
                do { try await Task.sleep(for: interval) } catch { return }
            }
        }
    }
}
