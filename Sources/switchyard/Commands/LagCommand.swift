import AdminHTTP
import ArgumentParser
import Topology

struct LagCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lag", abstract: "Show replication lag per replica: now, p50/p99/max over the window.")

    @OptionGroup var client: ClientOptions
    @Flag(
        help:
            "Print JSON: {\"replicas\":[{name,lag_seconds,p50,p99,max,transactions_behind,seconds_behind_master,io_running,sql_running}]}."
    )
    var json = false
    @Flag(help: "Refresh every second until interrupted.") var watch = false

    struct Document: Encodable {
        struct Replica: Encodable {
            var name: String
            @ExplicitNull var lagSeconds: Double?
            @ExplicitNull var p50: Double?
            @ExplicitNull var p99: Double?
            @ExplicitNull var max: Double?
            @ExplicitNull var transactionsBehind: UInt64?
            @ExplicitNull var secondsBehindMaster: Int?
            @ExplicitNull var ioRunning: String?
            @ExplicitNull var sqlRunning: String?

            enum CodingKeys: String, CodingKey {
                case name, p50, p99, max
                case lagSeconds = "lag_seconds"
                case transactionsBehind = "transactions_behind"
                case secondsBehindMaster = "seconds_behind_master"
                case ioRunning = "io_running"
                case sqlRunning = "sql_running"
            }
        }
        var replicas: [Replica]
    }

    func run() async throws {
        let client = try client.client()
        repeat {
            let lag = try await client.get("/v1/lag", as: LagDocument.self)
            if json {
                try JSONOutput.print(
                    Document(
                        replicas: lag.replicas.map {
                            Document.Replica(
                                name: $0.name, lagSeconds: $0.lagSeconds, p50: $0.p50, p99: $0.p99, max: $0.max,
                                transactionsBehind: $0.transactionsBehind, secondsBehindMaster: $0.secondsBehindMaster,
                                ioRunning: $0.ioRunning, sqlRunning: $0.sqlRunning)
                        }))
            } else {
                if watch { print("\u{1B}[H\u{1B}[2J", terminator: "") }
                print(Self.table(lag))
            }
            if watch { try await Task.sleep(for: .seconds(1)) }
        } while watch
    }

    static func seconds(_ value: Double?) -> String {
        guard let value else { return "-" }
        return value < 10 ? "\((value * 1000).rounded() / 1000)s" : "\(Int(value.rounded()))s"
    }

    static func table(_ lag: LagDocument) -> String {
        let rows = lag.replicas.map { replica in
            [
                replica.name, seconds(replica.lagSeconds), seconds(replica.p50), seconds(replica.p99),
                seconds(replica.max), replica.transactionsBehind.map(String.init) ?? "-",
                replica.secondsBehindMaster.map(String.init) ?? "NULL", replica.ioRunning ?? "-",
                replica.sqlRunning ?? "-",
                sparkline(replica.recent.map { Int64(($0 * 1000).rounded()) }, floor: 1000),
            ]
        }
        let window = Int(lag.windowSeconds)
        return Table.render(
            header: ["REPLICA", "LAG", "P50", "P99", "MAX", "TRX BEHIND", "SBM", "IO", "SQL", "RECENT (scale ≥1s)"],
            rows: rows)
            + "\n(window: last \(window >= 60 ? "\(window / 60) min" : "\(window) s"); LAG is heartbeat lag)"
    }
}
