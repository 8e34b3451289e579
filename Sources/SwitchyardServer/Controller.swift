import AdminHTTP
public import Logging
import MariaDBClient
public import Monitor
public import Prometheus
public import SQLProxy
import ServiceLifecycle
public import SwitchyardConfiguration
public import Topology
import UnixSignals

/// The composition root: turns a config into the controller's objects and runs them as one
/// `ServiceGroup`. The only place that decides log levels and owns the metrics registry.
public struct Controller: Sendable {
    public let config: Config
    public let store: TopologyStore
    public let registry: PrometheusCollectorRegistry
    public let monitor: MonitorService
    public let logger: Logger
    /// The SQL proxy, when the config enables it.
    public let proxy: ProxyService?
    private let adminToken: String?

    public struct StartupError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Builds the controller; secrets are read here, and a missing one is a startup error naming it.
    public init(config: Config, logger: Logger, resolver: SecretResolver = SecretResolver()) throws(StartupError) {
        self.config = config
        self.logger = logger
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        let metrics = MonitorMetrics(factory: PrometheusMetricsFactory(registry: registry))
        let servers = config.servers.map { ServerIdentity(name: $0.name, host: $0.host, port: $0.port) }
        let store = TopologyStore(
            cluster: config.cluster.name, servers: servers, lagWindow: config.lag.historyWindow,
            heartbeatInterval: config.heartbeat.interval, metrics: metrics)
        self.store = store

        func secret(_ secret: Secret, _ what: String) throws(StartupError) -> String {
            do { return try resolver.resolve(secret) } catch {
                throw StartupError(description: "\(what): \(error.description)")
            }
        }
        guard let monitorCredential = config.credentials.monitor else {
            throw StartupError(description: "credentials.monitor is missing")
        }
        let monitorPassword = try secret(monitorCredential.password, "credentials.monitor")
        let tls = TLSOptions(
            mode: TLSMode(rawValue: config.tls.mode.rawValue) ?? .verifyIdentity, caFile: config.tls.caFile,
            certificateFile: config.tls.certFile, keyFile: config.tls.keyFile)
        let monitorSettings = config.monitor
        @Sendable func options(_ server: ServerIdentity, _ user: String, _ password: String) -> ConnectionOptions {
            ConnectionOptions(
                host: server.host, port: server.port, user: user, password: password, tls: tls,
                connectTimeout: monitorSettings.connectTimeout, readTimeout: monitorSettings.readTimeout,
                writeTimeout: monitorSettings.readTimeout)
        }
        let heartbeatTable =
            config.heartbeat.enabled ? "`\(config.heartbeat.schema)`.`\(config.heartbeat.table)`" : nil
        let pollers = servers.map { server in
            ServerPoller(
                probe: MariaDBInstanceProbe(
                    server: server,
                    options: options(server, monitorCredential.user, monitorPassword),
                    heartbeatTable: heartbeatTable),
                store: store, interval: monitorSettings.probeInterval, timeout: monitorSettings.probeTimeout,
                logger: logger)
        }
        var heartbeat: HeartbeatLoop?
        if config.heartbeat.enabled, let credential = config.credentials.heartbeat {
            let password = try secret(credential.password, "credentials.heartbeat")
            let writer = MariaDBHeartbeatWriter(schema: config.heartbeat.schema, table: config.heartbeat.table) {
                server in options(server, credential.user, password)
            }
            heartbeat = HeartbeatLoop(
                writer: writer, store: store, interval: config.heartbeat.interval,
                timeout: min(config.heartbeat.interval * 4, monitorSettings.readTimeout), logger: logger)
        }
        self.monitor = MonitorService(store: store, pollers: pollers, heartbeat: heartbeat, logger: logger)
        self.proxy = try Self.makeProxy(
            config: config, store: store, registry: registry, logger: logger, monitorUser: monitorCredential.user,
            monitorPassword: monitorPassword, options: options)
        self.adminToken = try config.admin.token.map { token throws(StartupError) in
            let value = try secret(token, "admin token")
            if value.isEmpty { throw StartupError(description: "admin token from \(token) is empty") }
            return value
        }
    }

    private static func makeProxy(
        config: Config, store: TopologyStore, registry: PrometheusCollectorRegistry, logger: Logger,
        monitorUser: String, monitorPassword: String,
        options: @escaping @Sendable (ServerIdentity, String, String) -> ConnectionOptions
    ) throws(StartupError) -> ProxyService? {
        guard let proxy = config.proxy else { return nil }
        var settings = ProxySettings()
        settings.host = proxy.host
        settings.port = proxy.port
        settings.requireTLS = proxy.requireTLS
        if let cert = proxy.certFile, let key = proxy.keyFile {
            settings.serverTLS = .init(certificateFile: cert, keyFile: key)
        }
        settings.clientCAFile = proxy.clientCAFile
        // Shown to the servers only for accounts that require a certificate, which need a client CA.
        if proxy.clientCAFile != nil, let cert = config.tls.certFile, let key = config.tls.keyFile {
            settings.backendCertificate = .init(certificateFile: cert, keyFile: key)
        }
        switch proxy.backendTLS {
        case .disabled: settings.backendTLS = .disabled
        case .required: settings.backendTLS = .unverified
        case .verifyCA: settings.backendTLS = .verified(caFile: config.tls.caFile ?? "", verifyHostname: false)
        case .verifyIdentity: settings.backendTLS = .verified(caFile: config.tls.caFile ?? "", verifyHostname: true)
        }
        settings.tlsFastPath = proxy.tlsFastPath
        settings.fastRelay = proxy.fastRelay
        if let threads = proxy.threads { settings.threads = threads }
        if let busyPoll = proxy.relayBusyPoll { settings.relayBusyPoll = busyPoll }
        settings.maxConnections = proxy.maxConnections
        settings.handshakeTimeout = proxy.handshakeTimeout
        settings.allowedNetworks = proxy.allowedNetworks
        settings.userNetworks = proxy.userNetworks
        settings.maxPacketSize = proxy.maxPacketSize
        settings.authThrottleMaxFailures = proxy.authThrottleMaxFailures
        settings.authThrottleWindow = proxy.authThrottleWindow
        settings.backendConnectTimeout = proxy.backendConnectTimeout
        settings.failoverHold = proxy.failoverHold

        let currentPrimary: @Sendable () async -> ProxyService.Primary? = {
            guard let primary = await store.primary() else { return nil }
            return ProxyService.Primary(server: primary.server, version: primary.state?.version)
        }
        // The accounts come from the primary's mysql.user, read with the monitor account, except for the
        // users the config defines.
        let accounts = AccountDirectory(configured: proxy.accounts) {
            guard let primary = await currentPrimary() else {
                throw StartupError(description: "no primary is known yet")
            }
            let connection = try await MariaDBConnection.connect(options(primary.server, monitorUser, monitorPassword))
            defer { connection.close() }
            return try await connection.readAccounts()
        }
        do {
            return try ProxyService(
                settings: settings, accounts: accounts,
                metrics: ProxyMetrics(factory: PrometheusMetricsFactory(registry: registry)),
                primary: currentPrimary, followInterval: .milliseconds(100),
                accountRefreshInterval: proxy.accountRefreshInterval, logger: logger)
        } catch {
            throw StartupError(description: error.description)
        }
    }

    /// The current snapshot.
    public func snapshot() async -> ClusterSnapshot {
        await store.snapshot(nowMicros: WallClock.system.nowMicros())
    }

    /// Runs the monitor and the admin API until SIGINT/SIGTERM (or until the task is cancelled).
    public func run(onAdminRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let store = self.store
        let admin: any Service
        do {
            admin = try AdminServer.make(
                settings: AdminServer.Settings(
                    host: config.admin.host, port: config.admin.port, token: adminToken,
                    lagWindow: config.lag.historyWindow),
                registry: registry,
                snapshot: { await store.snapshot(nowMicros: WallClock.system.nowMicros()) },
                proxyStatus: { [proxy, config] in
                    guard let proxy, let listen = config.proxy else { return nil }
                    let totals = proxy.metrics.totals()
                    return StatusDocument.Proxy(
                        listen: "\(listen.host):\(listen.port)", primary: proxy.state.primary?.name,
                        connectionsCurrent: totals.connectionsCurrent, connectionsTotal: totals.connectionsTotal,
                        statementsTotal: totals.statementsTotal, bytesFromClients: totals.bytesFromClients,
                        bytesToClients: totals.bytesToClients, errorsTotal: totals.errorsTotal,
                        failedLogins: totals.failedLogins, sessionsMoved: totals.sessionsMoved,
                        sessionsEnded: totals.sessionsNotMoved)
                },
                logger: logger,
                onRunning: onAdminRunning)
        } catch {
            throw StartupError(description: "\(error)")
        }
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: monitor), .init(service: admin),
            .init(service: AnomalyLog(store: store, interval: config.monitor.probeInterval, logger: logger)),
        ]
        if let proxy { services.append(.init(service: proxy)) }
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
    }
}
