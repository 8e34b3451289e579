public import CoreMetrics
import Synchronization
import Topology

/// Gauges and counters the monitor keeps per server, created through an injected factory (no global
/// metrics system is needed; the composition root hands in the Prometheus factory).
public final class MonitorMetrics: Sendable {
    private struct PerServer: Sendable {
        let up: Gauge
        let readOnly: Gauge
        let lagSeconds: Gauge
        let transactionsBehind: Gauge
        let probeDuration: Gauge
        let probeFailures: Counter
        let isPrimary: Gauge
    }

    private let factory: any MetricsFactory
    private let servers: Mutex<[String: PerServer]> = Mutex([:])
    private let heartbeatWrites: Counter
    private let heartbeatFailures: Counter

    public init(factory: any MetricsFactory) {
        self.factory = factory
        heartbeatWrites = Counter(label: "switchyard_heartbeat_writes_total", factory: factory)
        heartbeatFailures = Counter(label: "switchyard_heartbeat_write_failures_total", factory: factory)
    }

    private func gauges(for server: ServerIdentity) -> PerServer {
        servers.withLock { map in
            if let existing = map[server.name] { return existing }
            let dimensions = [("server", server.name), ("address", server.address)]
            let made = PerServer(
                up: Gauge(label: "switchyard_server_up", dimensions: dimensions, factory: factory),
                readOnly: Gauge(label: "switchyard_server_read_only", dimensions: dimensions, factory: factory),
                lagSeconds: Gauge(
                    label: "switchyard_replication_lag_seconds", dimensions: dimensions, factory: factory),
                transactionsBehind: Gauge(
                    label: "switchyard_replication_transactions_behind", dimensions: dimensions, factory: factory),
                probeDuration: Gauge(
                    label: "switchyard_probe_duration_seconds", dimensions: dimensions, factory: factory),
                probeFailures: Counter(
                    label: "switchyard_probe_failures_total", dimensions: dimensions, factory: factory),
                isPrimary: Gauge(label: "switchyard_server_is_primary", dimensions: dimensions, factory: factory)
            )
            map[server.name] = made
            return made
        }
    }

    func record(_ observation: Observation) {
        let gauges = gauges(for: observation.server)
        gauges.probeDuration.record(Double(observation.durationMicros) / 1_000_000)
        switch observation.result {
        case .reachable(let state):
            gauges.up.record(1)
            gauges.readOnly.record(state.readOnly ? 1 : 0)
        case .unreachable:
            gauges.up.record(0)
            gauges.probeFailures.increment()
        }
    }

    func record(server: ServerIdentity, role: Role, lag: LagReport?) {
        let gauges = gauges(for: server)
        gauges.isPrimary.record(role == .primary ? 1 : 0)
        if let millis = lag?.heartbeatLagMillis { gauges.lagSeconds.record(Double(millis) / 1000) }
        if let behind = lag?.transactionsBehind { gauges.transactionsBehind.record(Double(behind)) }
    }

    func heartbeatWritten(success: Bool) {
        if success { heartbeatWrites.increment() } else { heartbeatFailures.increment() }
    }
}
