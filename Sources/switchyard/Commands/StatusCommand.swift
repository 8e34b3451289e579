import AdminHTTP
import ArgumentParser

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show the cluster's topology as the controller sees it.")

    @OptionGroup var client: ClientOptions
    @Flag(
        help:
            "Print JSON: {\"servers\":[{name,address,role,read_only,gtid_current_pos,source,io_running,sql_running,last_error}],\"proxy\":{listen,primary,connections_current,connections_total,statements_total,bytes_from_clients,bytes_to_clients,errors_total,failed_logins,sessions_moved,sessions_ended}|null}."
    )
    var json = false

    /// The stable `status --json` shape.
    struct Document: Encodable {
        struct Server: Encodable {
            var name: String
            var address: String
            var role: String
            @ExplicitNull var readOnly: Bool?
            @ExplicitNull var gtidCurrentPos: String?
            @ExplicitNull var source: String?
            @ExplicitNull var ioRunning: String?
            @ExplicitNull var sqlRunning: String?
            @ExplicitNull var lastError: String?

            enum CodingKeys: String, CodingKey {
                case name, address, role, source
                case readOnly = "read_only"
                case gtidCurrentPos = "gtid_current_pos"
                case ioRunning = "io_running"
                case sqlRunning = "sql_running"
                case lastError = "last_error"
            }
        }
        var servers: [Server]
        /// The SQL proxy's counters; null when the proxy is off.
        @ExplicitNull var proxy: StatusDocument.Proxy?
    }

    func run() async throws {
        let status = try await client.client().get("/v1/status", as: StatusDocument.self)
        if json {
            try JSONOutput.print(
                Document(
                    servers: status.servers.map {
                        Document.Server(
                            name: $0.name, address: $0.address, role: $0.role, readOnly: $0.readOnly,
                            gtidCurrentPos: $0.gtidCurrentPos, source: $0.source, ioRunning: $0.ioRunning,
                            sqlRunning: $0.sqlRunning, lastError: $0.lastError)
                    }, proxy: status.proxy))
            return
        }
        print("Cluster \(status.cluster), primary \(status.primary ?? "none"), epoch \(status.epoch)")
        let rows = status.servers.map { server in
            [
                server.name, server.address, server.role,
                server.readOnly.map { $0 ? "ON" : "OFF" } ?? "-",
                server.gtidCurrentPos.map { $0.isEmpty ? "(empty)" : $0 } ?? "-",
                server.source ?? "-", server.ioRunning ?? "-", server.sqlRunning ?? "-",
                server.lastError ?? "",
            ]
        }
        print(
            Table.render(
                header: ["NAME", "ADDRESS", "ROLE", "READ_ONLY", "GTID", "SOURCE", "IO", "SQL", "LAST ERROR"],
                rows: rows))
        if let proxy = status.proxy {
            print(
                "Proxy on \(proxy.listen) → \(proxy.primary ?? "no primary"): \(proxy.connectionsCurrent) connections now, "
                    + "\(proxy.connectionsTotal) logins, \(proxy.statementsTotal) statements, \(proxy.errorsTotal) errors, "
                    + "\(proxy.failedLogins) failed logins, \(proxy.bytesFromClients) bytes in / \(proxy.bytesToClients) out, "
                    + "\(proxy.sessionsMoved) sessions moved and \(proxy.sessionsEnded) ended (primary moved, connection lost)"
            )
        } else {
            print("Proxy: off")
        }
        if status.anomalies.isEmpty {
            print("No anomalies.")
        } else {
            print("Anomalies:")
            for finding in status.anomalies { print("  [\(finding.code)] \(finding.message)") }
        }
    }
}
