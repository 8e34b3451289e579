public import Logging
import NIOCore
import NIOPosix
import NIOSSL
public import ServiceLifecycle
import TLSRecordLayer
public import Topology

#if canImport(Glibc)
    import Glibc
#endif

/// The SQL proxy as a `Service` of `switchyard run`: listens for MySQL clients, follows the primary the
/// controller reports, and refreshes the account list the proxy verifies logins against.
public final class ProxyService: Service, Sendable {
    public let settings: ProxySettings
    public let state: ProxyState
    public let accounts: AccountDirectory
    public let metrics: ProxyMetrics
    private let primary: @Sendable () async -> Primary?
    private let followInterval: Duration
    private let accountRefreshInterval: Duration
    private let serverTLS: ServerTLSContext?
    private let backendTLS: ReloadingTLSContext?
    /// Handshake secrets for the TLS fast path; nil when `tls_fast_path` is off.
    private let tlsSecrets: TLSSecretLog?
    private let logger: Logger
    private let onListening: @Sendable (Int) async -> Void

    /// The primary as the controller reports it.
    public struct Primary: Sendable, Hashable {
        public var server: ServerIdentity
        /// `SELECT VERSION()` on it, if known; clients are greeted with it.
        public var version: String?
        public init(server: ServerIdentity, version: String?) {
            self.server = server
            self.version = version
        }
    }

    public struct StartupError: Error, CustomStringConvertible {
        public var description: String
    }

    /// - Parameters:
    ///   - primary: the current primary as the controller sees it (nil while unknown).
    ///   - followInterval: how often to ask.
    public init(
        settings: ProxySettings, accounts: AccountDirectory, metrics: ProxyMetrics,
        primary: @escaping @Sendable () async -> Primary?, followInterval: Duration,
        accountRefreshInterval: Duration, logger: Logger,
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) throws(StartupError) {
        self.settings = settings
        self.state = ProxyState()
        self.accounts = accounts
        self.metrics = metrics
        self.primary = primary
        self.followInterval = followInterval
        self.accountRefreshInterval = accountRefreshInterval
        self.logger = logger
        self.onListening = onListening
        let tlsSecrets = settings.tlsFastPath ? TLSSecretLog() : nil
        self.tlsSecrets = tlsSecrets
        do {
            serverTLS = try settings.serverTLS.map {
                try ServerTLSContext(
                    files: $0, clientCAFile: settings.clientCAFile, logger: logger,
                    keyLog: tlsSecrets?.keyLogCallback)
            }
        } catch {
            throw StartupError(
                description: "proxy.tls: cannot load the certificate, key or client CA: \(error)")
        }
        if settings.clientCAFile != nil && serverTLS == nil {
            throw StartupError(description: "proxy.tls.client_ca_file needs proxy.tls.cert_file and key_file")
        }
        do {
            backendTLS = try makeBackendTLSContext(
                settings.backendTLS, certificate: settings.backendCertificate, keyLog: tlsSecrets?.keyLogCallback,
                logger: logger)
        } catch {
            throw StartupError(
                description:
                    "proxy.backend_tls: cannot load the CA or the proxy's certificate (tls.cert_file): \(error)"
            )
        }
        if settings.requireTLS && serverTLS == nil {
            throw StartupError(description: "proxy.require_tls needs proxy.tls.cert_file and proxy.tls.key_file")
        }
    }

    public func run() async throws {
        raiseDescriptorLimit()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: settings.threads)
        // The relay needs the sockets' TLS records in the fast path's hands (or no TLS at all).
        let fastRelay =
            settings.fastRelay && (tlsSecrets != nil || (serverTLS == nil && backendTLS == nil))
            ? FastRelay(threads: settings.threads, busyPoll: settings.relayBusyPoll, logger: logger) : nil
        var environment = ClientSession.Environment(
            settings: settings, state: state, accounts: accounts, serverTLS: serverTLS, backendTLS: backendTLS,
            tlsSecrets: tlsSecrets, metrics: metrics, logger: logger)
        environment.fastRelay = fastRelay
        let listener: (descriptor: Int32, port: Int)
        do {
            listener = try Sockets.listen(host: settings.host, port: settings.port, backlog: 1024)
        } catch {
            fastRelay?.stop()
            try? await group.shutdownGracefully()
            throw StartupError(description: "proxy.listen: \(error)")
        }
        let logger = self.logger
        let sessions = environment
        let acceptor = Acceptor(listener: listener.descriptor) { socket in
            // The session keeps a duplicate for the fast relay; NIO owns the original.
            let duplicate = sessions.fastRelay == nil ? -1 : dup(socket)
            let loop = group.next()
            ClientBootstrap(group: loop)
                .channelOption(.writeBufferWaterMark, value: .init(low: 256 * 1024, high: 1024 * 1024))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            ClientSession(environment: sessions, descriptor: duplicate >= 0 ? duplicate : nil))
                    }
                }
                .withConnectedSocket(socket)
                .whenFailure { error in
                    // The channel never became active, so the session (which closes its duplicate when the
                    // channel goes inactive) will not: this is the only close.
                    if duplicate >= 0 { close(duplicate) }
                    logger.warning("cannot take a client connection: \(error)")
                }
        }
        let port = listener.port
        logger.info(
            "SQL proxy listening",
            metadata: [
                "address": "\(settings.host):\(port)", "client_tls": "\(serverTLS != nil)",
                "require_tls": "\(settings.requireTLS)", "backend_tls": "\(settings.backendTLS)",
                "threads": "\(settings.threads)", "tls_fast_path": "\(settings.tlsFastPath)",
                "fast_relay": "\(fastRelay != nil)",
                "relay_busy_poll": "\(Int(settings.relayBusyPoll / .microseconds(1)))us",
            ])
        await onListening(port)
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.followPrimary() }
                group.addTask { await self.refreshAccounts() }
                await group.next()
                group.cancelAll()
            }
        } onGracefulShutdown: {
            acceptor.stop()
        }
        acceptor.stop()
        for session in state.allSessions() { _ = session.shutDown() }
        // Sessions the relay carries go back to their event loops, which then close them.
        fastRelay?.stop()
        try? await group.shutdownGracefully()
    }

    /// Each session holds up to four socket descriptors (its client and server sockets, and the fast
    /// relay's duplicates): the soft limit goes up to the hard one, as a 1,024 default would cap the
    /// proxy at a few hundred sessions.
    private func raiseDescriptorLimit() {
        var limit = rlimit()
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        guard getrlimit(resource, &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        let before = limit.rlim_cur
        limit.rlim_cur = limit.rlim_max
        if setrlimit(resource, &limit) == 0 {
            logger.info("raised the open-file limit", metadata: ["from": "\(before)", "to": "\(limit.rlim_max)"])
        }
    }

    private func followPrimary() async {
        var known: ServerIdentity?
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let current = await primary()
            if let version = current?.version {
                // MariaDB 10+ greets with a `5.5.5-` prefix that clients strip; keep it so they see MariaDB.
                state.noteServerVersion(version.hasPrefix("5.5.5-") ? version : "5.5.5-" + version)
            }
            if current?.server != known {
                logger.notice(
                    "proxy routes to a new primary",
                    metadata: ["primary": "\(current?.server.name ?? "none")", "previous": "\(known?.name ?? "none")"])
                known = current?.server
                state.setPrimary(current?.server)
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.followInterval) }
        }
    }

    private func refreshAccounts() async {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            await accounts.refresh()
            if let error = await accounts.lastLoadError {
                logger.warning(
                    "cannot read the accounts from the primary; keeping the last list", metadata: ["error": "\(error)"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.accountRefreshInterval) }
        }
    }
}
