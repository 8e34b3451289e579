import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Local MariaDB replication clusters for demos and tests: private instances on 127.0.0.1 with TLS,
/// GTID replication from the first instance, the controller's accounts and a ready config file.
public struct Sandbox: Sendable {
    public struct Options: Sendable {
        public var servers: Int
        public var basePort: Int
        public var directory: String
        public var adminPort: Int
        /// The SQL proxy's port in the generated config.
        public var proxyPort: Int

        public init(
            servers: Int = 3, basePort: Int = 3311, directory: String, adminPort: Int = 6080, proxyPort: Int = 6033
        ) {
            self.servers = servers
            self.basePort = basePort
            self.directory = directory
            self.adminPort = adminPort
            self.proxyPort = proxyPort
        }
    }

    /// Receives progress lines.
    public let log: @Sendable (String) -> Void

    public init(log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.log = log
    }

    struct Tools {
        var server: String
        var installDB: String
        var client: String
        var openssl: String

        static func find() throws -> Tools {
            func need(_ names: [String], package: String) throws -> String {
                for name in names { if let path = ChildProcess.find(name) { return path } }
                throw SandboxError(
                    "\(names[0]) was not found: install the Debian package \(package) (apt-get install -y \(package))")
            }
            return Tools(
                server: try need(["mariadbd"], package: "mariadb-server"),
                installDB: try need(["mariadb-install-db"], package: "mariadb-server"),
                client: try need(["mariadb"], package: "mariadb-client"),
                openssl: try need(["openssl"], package: "openssl"))
        }
    }

    // MARK: up

    /// Starts a fresh cluster (stopping and wiping a previous sandbox in the same directory).
    public func up(_ options: Options) throws -> SandboxManifest {
        guard (1...9).contains(options.servers) else { throw SandboxError("--servers must be between 1 and 9") }
        guard options.basePort > 0, options.basePort + options.servers <= 65535 else {
            throw SandboxError("--base-port \(options.basePort) leaves no room for \(options.servers) ports")
        }
        let tools = try Tools.find()
        let directory = URL(fileURLWithPath: options.directory).standardizedFileURL.path
        let fileManager = FileManager.default
        if fileManager.fileExists(atPath: SandboxManifest.path(in: directory)) {
            log("stopping the previous sandbox in \(directory)")
            try down(directory: directory)
        }
        if fileManager.fileExists(atPath: directory),
            let entries = try? fileManager.contentsOfDirectory(atPath: directory), !entries.isEmpty,
            !fileManager.fileExists(atPath: SandboxManifest.path(in: directory))
        {
            throw SandboxError(
                "\(directory) is not empty and holds no sandbox (no sandbox.json): choose another --dir or empty it")
        }
        if fileManager.fileExists(atPath: directory) {
            for entry in try fileManager.contentsOfDirectory(atPath: directory) {
                try fileManager.removeItem(atPath: directory + "/" + entry)
            }
        }
        try fileManager.createDirectory(atPath: directory + "/secrets", withIntermediateDirectories: true)
        try fileManager.createDirectory(atPath: directory + "/tls", withIntermediateDirectories: true)

        log("creating a CA, a server certificate and a client certificate")
        let tls = try makeCertificates(directory: directory + "/tls", openssl: tools.openssl)

        let secrets = try ["monitor", "heartbeat", "replication", "app", "admin"].reduce(into: [String: String]()) {
            result, account in
            let path = directory + "/secrets/\(account)." + (account == "admin" ? "token" : "password")
            try writeSecret(randomSecret(), to: path)
            result[account] = path
        }

        var instances: [SandboxManifest.Instance] = []
        for index in 1...options.servers {
            let name = "s\(index)"
            let base = directory + "/" + name
            for sub in ["data", "tmp"] {
                try fileManager.createDirectory(atPath: base + "/" + sub, withIntermediateDirectories: true)
            }
            let port = options.basePort + index - 1
            let defaultsFile = base + "/my.cnf"
            try myCnf(index: index, port: port, base: base, tls: tls).write(
                toFile: defaultsFile, atomically: true, encoding: .utf8)
            instances.append(
                SandboxManifest.Instance(
                    name: name, port: port, pid: 0, socket: base + "/mariadbd.sock", datadir: base + "/data",
                    role: index == 1 ? "primary" : "replica", defaultsFile: defaultsFile))
        }

        log("initialising \(options.servers) data directories")
        try initialiseDataDirectories(instances, tools: tools)

        var manifest = SandboxManifest(
            config: directory + "/switchyard.yaml", directory: directory, instances: instances, secrets: secrets,
            caFile: tls.ca, adminPort: options.adminPort, proxyPort: options.proxyPort,
            certificateFile: tls.certificate, keyFile: tls.key)
        try manifest.save()
        for index in manifest.instances.indices {
            manifest.instances[index].pid = try start(manifest.instances[index], tools: tools)
            try manifest.save()
        }

        log("creating accounts and starting replication")
        try configureReplication(manifest, tools: tools)
        try writeConfig(manifest)
        try manifest.save()
        return manifest
    }

    private func randomSecret() -> String {
        let alphabet = Array("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
        var generator = SystemRandomNumberGenerator()
        return String((0..<24).map { _ in alphabet[Int(generator.next(upperBound: UInt(alphabet.count)))] })
    }

    private func writeSecret(_ secret: String, to path: String) throws {
        try (secret + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o600)
    }

    struct TLSFiles {
        var ca: String
        var certificate: String
        var key: String
    }

    private func makeCertificates(directory: String, openssl: String) throws -> TLSFiles {
        let ca = directory + "/ca.pem"
        let caKey = directory + "/ca.key"
        try ChildProcess.run(
            openssl,
            [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "825", "-subj", "/CN=Switchyard sandbox CA",
                "-keyout", caKey, "-out", ca,
            ])
        chmod(caKey, 0o600)
        /// `name`.pem and `name`.key, signed by the CA, with `extensions` (after the common ones).
        func signed(_ name: String, subject: String, extensions: String) throws {
            let request = directory + "/\(name).csr"
            let extensionsFile = directory + "/\(name).ext"
            try ChildProcess.run(
                openssl,
                [
                    "req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", directory + "/\(name).key",
                    "-out", request,
                ])
            try ("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n" + extensions)
                .write(toFile: extensionsFile, atomically: true, encoding: .utf8)
            try ChildProcess.run(
                openssl,
                [
                    "x509", "-req", "-in", request, "-CA", ca, "-CAkey", caKey, "-CAcreateserial", "-days", "825",
                    "-out", directory + "/\(name).pem", "-extfile", extensionsFile,
                ])
            chmod(directory + "/\(name).key", 0o600)
        }
        try signed(
            "server", subject: "/CN=127.0.0.1",
            extensions:
                "extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost,DNS:127.0.0.1\n")
        // A client certificate for people and tests, for accounts that REQUIRE X509 or ISSUER.
        try signed("client", subject: "/CN=Switchyard sandbox client", extensions: "extendedKeyUsage=clientAuth\n")
        return TLSFiles(ca: ca, certificate: directory + "/server.pem", key: directory + "/server.key")
    }

    private func myCnf(index: Int, port: Int, base: String, tls: TLSFiles) -> String {
        var lines = [
            "[mariadbd]",
            "datadir=\(base)/data",
            "tmpdir=\(base)/tmp",
            "socket=\(base)/mariadbd.sock",
            "pid_file=\(base)/mariadbd.pid",
            "log_error=\(base)/error.log",
            "port=\(port)",
            "bind_address=127.0.0.1",
            "server_id=\(index)",
            "log_bin=mariadb-bin",
            "relay_log=relay-bin",
            "binlog_format=ROW",
            "log_slave_updates=ON",
            "gtid_strict_mode=ON",
            "gtid_domain_id=0",
            "sync_binlog=1",
            "report_host=127.0.0.1",
            "report_port=\(port)",
            "skip_name_resolve",
            "performance_schema=OFF",
            "innodb_buffer_pool_size=64M",
            "innodb_log_file_size=48M",
            "read_only=ON",
            "slave_net_timeout=4",
            "max_connections=1000",
            "max_allowed_packet=64M",
            "local_infile=ON",
            "ssl_ca=\(tls.ca)",
            "ssl_cert=\(tls.certificate)",
            "ssl_key=\(tls.key)",
        ]
        if geteuid() == 0 { lines.insert("user=root", at: 1) }
        return lines.joined(separator: "\n") + "\n"
    }

    private func initialiseDataDirectories(_ instances: [SandboxManifest.Instance], tools: Tools) throws {
        let failures = LockedList()
        DispatchQueue.concurrentPerform(iterations: instances.count) { index in
            let instance = instances[index]
            let base = (instance.datadir as NSString).deletingLastPathComponent
            var arguments = [
                "--no-defaults", "--datadir=\(instance.datadir)", "--tmpdir=\(base)/tmp",
                "--auth-root-authentication-method=socket", "--skip-test-db", "--skip-name-resolve",
            ]
            if geteuid() == 0 { arguments.insert("--user=root", at: 1) }
            do { try ChildProcess.run(tools.installDB, arguments) } catch {
                failures.append("\(instance.name): \(error)")
            }
        }
        if let failure = failures.items.first { throw SandboxError("mariadb-install-db failed for \(failure)") }
    }

    /// Starts one instance in its own session (it outlives this process) and waits until it answers.
    func start(_ instance: SandboxManifest.Instance, tools: Tools) throws -> Int32 {
        let base = (instance.datadir as NSString).deletingLastPathComponent
        let pidFile = base + "/mariadbd.pid"
        try? FileManager.default.removeItem(atPath: pidFile)
        let command =
            "setsid '\(tools.server)' --defaults-file='\(instance.defaultsFile)' </dev/null >>'\(base)/stdout.log' 2>&1 &"
        try ChildProcess.run("/bin/sh", ["-c", command])
        let deadline = Date().addingTimeInterval(60)
        var pid: Int32 = 0
        while Date() < deadline {
            if pid == 0, let text = try? String(contentsOfFile: pidFile, encoding: .utf8) {
                pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            }
            if pid != 0 {
                if !ProcessControl.isRunning(pid) { break }
                if (try? sql(instance, "SELECT 1", tools: tools)) != nil { return pid }
            } else if !serverStillStarting(base: base) {
                break
            }
            usleep(50_000)
        }
        let log = (try? String(contentsOfFile: base + "/error.log", encoding: .utf8)) ?? ""
        let tail = log.split(separator: "\n").suffix(6).joined(separator: "\n    ")
        throw SandboxError("\(instance.name) (port \(instance.port)) did not start; its error log ends:\n    \(tail)")
    }

    private func serverStillStarting(base: String) -> Bool {
        let log = (try? String(contentsOfFile: base + "/error.log", encoding: .utf8)) ?? ""
        return !log.contains("[ERROR] Aborting")
    }

    /// Runs SQL as root over the instance's unix socket (through the `mariadb` client); returns its
    /// tab-separated output without column names.
    @discardableResult
    public func rootSQL(_ instance: SandboxManifest.Instance, _ statements: String) throws -> String {
        try sql(instance, statements, tools: try Tools.find())
    }

    @discardableResult
    func sql(_ instance: SandboxManifest.Instance, _ statements: String, tools: Tools) throws -> String {
        try ChildProcess.run(
            tools.client,
            [
                "--no-defaults", "--socket=\(instance.socket)", "--user=root", "--batch", "--skip-column-names",
                "--connect-timeout=2", "--execute=\(statements)",
            ])
    }

    private func configureReplication(_ manifest: SandboxManifest, tools: Tools) throws {
        guard let primary = manifest.instances.first else { return }
        func quoted(_ account: String) throws -> String {
            "'" + (try manifest.password(account)).replacingOccurrences(of: "'", with: "''") + "'"
        }
        let host = "'127.0.0.1'"
        try sql(
            primary,
            """
            SET GLOBAL read_only = OFF;
            CREATE USER 'switchyard_monitor'@\(host) IDENTIFIED BY \(try quoted("monitor")) REQUIRE SSL;
            GRANT RELOAD, PROCESS, REPLICATION SLAVE, BINLOG MONITOR, BINLOG ADMIN, SLAVE MONITOR,
              REPLICATION SLAVE ADMIN, REPLICATION MASTER ADMIN, READ_ONLY ADMIN, CONNECTION ADMIN
              ON *.* TO 'switchyard_monitor'@\(host);
            GRANT SELECT ON mysql.* TO 'switchyard_monitor'@\(host);
            GRANT SELECT ON switchyard.* TO 'switchyard_monitor'@\(host);
            CREATE USER 'switchyard_heartbeat'@\(host) IDENTIFIED BY \(try quoted("heartbeat")) REQUIRE SSL;
            GRANT CREATE, INSERT, UPDATE, SELECT ON switchyard.* TO 'switchyard_heartbeat'@\(host);
            CREATE USER 'repl'@\(host) IDENTIFIED BY \(try quoted("replication")) REQUIRE SSL;
            GRANT REPLICATION SLAVE ON *.* TO 'repl'@\(host);
            CREATE USER 'app'@\(host) IDENTIFIED BY \(try quoted("app")) REQUIRE SSL;
            CREATE DATABASE appdb;
            GRANT ALL ON appdb.* TO 'app'@\(host);
            CREATE DATABASE switchyard;
            CREATE TABLE switchyard.heartbeat (id TINYINT UNSIGNED NOT NULL PRIMARY KEY,
              seq BIGINT UNSIGNED NOT NULL, written_us BIGINT NOT NULL) ENGINE=InnoDB;
            """, tools: tools)
        let position = try sql(primary, "SELECT @@gtid_binlog_pos;", tools: tools)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        for replica in manifest.instances.dropFirst() {
            try sql(
                replica,
                """
                CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=\(primary.port), MASTER_USER='repl',
                  MASTER_PASSWORD=\(try quoted("replication")), MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1,
                  MASTER_HEARTBEAT_PERIOD=1, MASTER_SSL=1, MASTER_SSL_CA='\(manifest.caFile)',
                  MASTER_SSL_VERIFY_SERVER_CERT=1;
                START SLAVE;
                """, tools: tools)
        }
        for replica in manifest.instances.dropFirst() {
            let reached = try sql(replica, "SELECT MASTER_GTID_WAIT('\(position)', 60);", tools: tools)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            guard reached == "0" else {
                let status = (try? sql(replica, "SHOW SLAVE STATUS\\G", tools: tools)) ?? ""
                let errors = status.split(separator: "\n").filter { $0.contains("Last_") && $0.contains("Error:") }
                throw SandboxError(
                    "\(replica.name) did not catch up with \(primary.name) within 60 s: \(errors.joined(separator: "; "))"
                )
            }
        }
    }

    private func writeConfig(_ manifest: SandboxManifest) throws {
        let servers = manifest.instances.map { "  - name: \($0.name)\n    host: 127.0.0.1\n    port: \($0.port)" }
        let text = """
            # Generated by `switchyard sandbox up` for the local sandbox cluster in \(manifest.directory).
            # See config/switchyard.example.yaml for every key.
            version: 1
            cluster:
              name: sandbox
            servers:
            \(servers.joined(separator: "\n"))
            credentials:
              monitor:
                user: switchyard_monitor
                password_file: \(manifest.secrets["monitor"] ?? "")
              heartbeat:
                user: switchyard_heartbeat
                password_file: \(manifest.secrets["heartbeat"] ?? "")
              replication:
                user: repl
                password_file: \(manifest.secrets["replication"] ?? "")
            tls:
              mode: verify_identity
              ca_file: \(manifest.caFile)
              # The certificate Switchyard shows the servers (the proxy too, for accounts that REQUIRE X509).
              cert_file: \(manifest.certificateFile ?? "")
              key_file: \(manifest.keyFile ?? "")
            monitor:
              probe_interval: 500ms
              probe_timeout: 400ms
            heartbeat:
              interval: 250ms
            admin:
              listen: 127.0.0.1:\(manifest.adminPort)
              token_file: \(manifest.secrets["admin"] ?? "")
            proxy:
              listen: 127.0.0.1:\(manifest.proxyPort ?? 6033)
              routing: primary
              tls:
                cert_file: \(manifest.certificateFile ?? "")
                key_file: \(manifest.keyFile ?? "")
                client_ca_file: \(manifest.caFile)
              backend_tls: verify_identity

            """
        try text.write(toFile: manifest.config, atomically: true, encoding: .utf8)
    }

    // MARK: down and status

    /// Stops exactly the processes this sandbox started (by PID, checked against their command line) and
    /// waits until they have exited.
    public func down(directory: String) throws {
        let manifest = try SandboxManifest.load(directory: URL(fileURLWithPath: directory).standardizedFileURL.path)
        var stopping: [(SandboxManifest.Instance, Int32)] = []
        for instance in manifest.instances {
            let pid = livePID(instance)
            if pid > 0, ProcessControl.signal(pid, SIGCONT, marker: instance.defaultsFile),
                ProcessControl.signal(pid, SIGTERM, marker: instance.defaultsFile)
            {
                stopping.append((instance, pid))
            }
        }
        for (instance, pid) in stopping where !ProcessControl.waitForExit(pid, timeout: 30) {
            log("\(instance.name) did not stop within 30 s; sending SIGKILL")
            ProcessControl.signal(pid, SIGKILL, marker: instance.defaultsFile)
            _ = ProcessControl.waitForExit(pid, timeout: 10)
        }
    }

    /// The PID of a running instance: from its pid file when it restarted, else the manifest's.
    func livePID(_ instance: SandboxManifest.Instance) -> Int32 {
        let base = (instance.datadir as NSString).deletingLastPathComponent
        if let text = try? String(contentsOfFile: base + "/mariadbd.pid", encoding: .utf8),
            let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)),
            ProcessControl.isRunning(pid, marker: instance.defaultsFile)
        {
            return pid
        }
        return ProcessControl.isRunning(instance.pid, marker: instance.defaultsFile) ? instance.pid : 0
    }

    /// The manifest with each instance's live PID (0 when stopped) and live role.
    public func status(directory: String) throws -> SandboxManifest {
        var manifest = try SandboxManifest.load(directory: URL(fileURLWithPath: directory).standardizedFileURL.path)
        let tools = try? Tools.find()
        for index in manifest.instances.indices {
            let instance = manifest.instances[index]
            let pid = livePID(instance)
            manifest.instances[index].pid = pid
            guard pid > 0, let tools,
                let output = try? sql(instance, "SELECT @@read_only; SHOW ALL SLAVES STATUS;", tools: tools)
            else {
                manifest.instances[index].role = "stopped"
                continue
            }
            let lines = output.split(separator: "\n")
            if lines.count > 1 {
                manifest.instances[index].role = "replica"
            } else {
                manifest.instances[index].role = lines.first == "0" ? "primary" : "standalone"
            }
        }
        return manifest
    }
}

/// A list appended to from concurrent threads.
final class LockedList: @unchecked Sendable {
    // @unchecked Sendable: `items` is only read or written while holding `lock`.
    private let lock = NSLock()
    private var storage: [String] = []
    func append(_ item: String) { lock.withLock { storage.append(item) } }
    var items: [String] { lock.withLock { storage } }
}
