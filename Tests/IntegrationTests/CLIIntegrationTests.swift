import Foundation
import Sandbox
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The `switchyard` executable built by `swift build` (scripts/test builds it first).
func switchyardBinary() throws -> String {
    if let path = ProcessInfo.processInfo.environment["SWITCHYARD_BIN"] { return path }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    let path = root.appendingPathComponent(".build/debug/switchyard").path
    guard FileManager.default.isExecutableFile(atPath: path) else {
        throw Timeout(description: "\(path) not found: run `swift build` first (scripts/test does)")
    }
    return path
}

/// Runs the CLI to completion.
func runCLI(_ arguments: [String]) async throws -> ChildProcess.Result {
    let binary = try switchyardBinary()
    return try await offPool { try ChildProcess.capture(binary, arguments) }
}

extension IntegrationTests {
    @Test(
        "`switchyard run` serves the admin API; `lag --json` and `status --json` print the documented shapes; SIGTERM stops it"
    )
    func cliAgainstDaemon() async throws {
        try await ClusterFixture.with { cluster in
            let config = cluster.manifest.config
            let log = cluster.manifest.directory + "/run.log"
            let daemon = try ChildProcess.launch(try switchyardBinary(), ["run", "--config", config], logFile: log)
            var exitStatus: Int32?
            defer {
                if exitStatus == nil {
                    kill(daemon, SIGKILL)
                    _ = ChildProcess.waitForExit(daemon)
                }
            }

            var lag: [String: Any] = [:]
            try await poll("lag --json reports both replicas", deadline: .seconds(20), every: .milliseconds(200)) {
                let result = try await runCLI(["lag", "--json", "--config", config])
                guard result.status == 0,
                    let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any],
                    let replicas = object["replicas"] as? [[String: Any]], replicas.count == 2,
                    replicas.allSatisfy({ $0["lag_seconds"] is Double })
                else { return false }
                lag = object
                return true
            }
            let replicas = try #require(lag["replicas"] as? [[String: Any]])
            #expect(Set(replicas.compactMap { $0["name"] as? String }) == ["s2", "s3"])
            for replica in replicas {
                #expect(
                    Set(replica.keys) == [
                        "name", "lag_seconds", "p50", "p99", "max", "transactions_behind", "seconds_behind_master",
                        "io_running", "sql_running",
                    ])
                #expect(replica["io_running"] as? String == "Yes")
                #expect((replica["lag_seconds"] as? Double ?? 99) < 1.0)
            }

            let status = try await runCLI(["status", "--json", "--config", config])
            #expect(status.status == 0, "\(status.stderr)")
            let statusObject = try #require(
                try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])
            let servers = try #require(statusObject["servers"] as? [[String: Any]])
            #expect(servers.map { $0["role"] as? String } == ["primary", "replica", "replica"])
            #expect(servers[1]["source"] as? String == "s1")
            #expect(
                Set(servers[0].keys) == [
                    "name", "address", "role", "read_only", "gtid_current_pos", "source", "io_running", "sql_running",
                    "last_error",
                ])
            let proxy = try #require(statusObject["proxy"] as? [String: Any])
            #expect(
                Set(proxy.keys) == [
                    "listen", "primary", "connections_current", "connections_total", "statements_total",
                    "bytes_from_clients", "bytes_to_clients", "errors_total", "failed_logins", "sessions_moved",
                    "sessions_ended",
                ])
            #expect(proxy["primary"] as? String == "s1")

            // The table views render too.
            let table = try await runCLI(["lag", "--config", config])
            #expect(table.status == 0)
            #expect(table.stdout.contains("s2"))
            // Without the token the API refuses (HTTP 401 → exit 1); healthz needs none.
            let port = cluster.manifest.adminPort
            let refused = try await runCLI(["status", "--admin", "http://127.0.0.1:\(port)"])
            #expect(refused.status == 1)
            #expect(refused.stderr.contains("401"))
            // Metrics are served in Prometheus text format.
            let token = try cluster.manifest.password("admin")
            let metrics = try await httpGet(port: port, path: "/metrics", token: token)
            #expect(metrics.contains("switchyard_server_up{"))
            #expect(metrics.contains("switchyard_replication_lag_seconds{"))
            #expect(metrics.contains("switchyard_proxy_connections "))

            kill(daemon, SIGTERM)
            try await poll("daemon exits after SIGTERM", deadline: .seconds(10)) {
                exitStatus = ChildProcess.exitStatusIfExited(daemon)
                return exitStatus != nil
            }
            #expect(exitStatus == 0, "log: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")

            // With nothing listening, client commands exit 3.
            let unreachable = try await runCLI(["lag", "--admin", "http://127.0.0.1:\(port)"])
            #expect(unreachable.status == 3)
            #expect(unreachable.stderr.contains("cannot reach the admin API"))
        }
    }

    @Test(
        "the CLI reads an answer the admin API sends and closes on as soon as the request's head is in; a cut-short answer exits 3 naming it"
    )
    func cliAnswerBeforeClose() async throws {
        let body = #"{"window_seconds":60,"replicas":[{"name":"r9","samples":0,"recent":[]}]}"#
        let whole = try EagerHTTPServer(
            answer: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n"
                + "Connection: close\r\n\r\n\(body)")
        defer { whole.stop() }
        // The server's answer and its close race the CLI's request: every try must read the answer.
        for _ in 0..<20 {
            let lag = try await runCLI(["lag", "--json", "--admin", "http://127.0.0.1:\(whole.port)"])
            #expect(lag.status == 0, "\(lag.stderr)")
            #expect(lag.stdout.contains(#""r9""#), "\(lag.stdout)")
        }

        let headOnly = try EagerHTTPServer(answer: "HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{")
        defer { headOnly.stop() }
        let cut = try await runCLI(["status", "--admin", "http://127.0.0.1:\(headOnly.port)"])
        #expect(cut.status == 3)
        #expect(cut.stderr.contains("closed the connection in the middle of its answer"), "\(cut.stderr)")

        let silent = try EagerHTTPServer(answer: "")
        defer { silent.stop() }
        let none = try await runCLI(["status", "--admin", "http://127.0.0.1:\(silent.port)"])
        #expect(none.status == 3)
        #expect(none.stderr.contains("closed the connection before answering"), "\(none.stderr)")
    }

    @Test("`config check` names every bad key and exits 1; usage errors exit 2")
    func configCheck() async throws {
        let directory = NSTemporaryDirectory() + "switchyard-config-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/bad.yaml"
        try """
        version: 1
        servers:
          - name: a
            host: 127.0.0.1
            port: 99999
        monitor:
          probe_intervall: 1s
          probe_timeout: fast
        credentials:
          monitor:
            user: m
            password: inline
        """.write(toFile: path, atomically: true, encoding: .utf8)
        let result = try await runCLI(["config", "check", path])
        #expect(result.status == 1)
        for expected in [
            "servers[0].port", "monitor.probe_intervall", "monitor.probe_timeout", "credentials.monitor.password",
        ] {
            #expect(result.stderr.contains(expected), "missing \(expected) in: \(result.stderr)")
        }
        let usage = try await runCLI(["lag", "--bogus"])
        #expect(usage.status == 2)
    }
}

/// A plain HTTP/1.1 GET with a bearer token over a socket (for /metrics, which the CLI does not read).
func httpGet(port: Int, path: String, token: String) async throws -> String {
    let fd = try connectLoopback(port: port)
    defer { close(fd) }
    let request = Array(
        "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer \(token)\r\n\r\n".utf8)
    _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
    var response: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if count <= 0 { break }
        response.append(contentsOf: buffer[0..<count])
    }
    return String(decoding: response, as: UTF8.self)
}
