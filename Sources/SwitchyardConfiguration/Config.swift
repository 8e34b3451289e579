/// Switchyard's configuration, version 1. Read with `Config.load(path:)`; every field has a default
/// except the server list and credentials. See `config/switchyard.example.yaml` for every key.
public import Topology

public struct Config: Hashable, Sendable {
    public static let currentVersion = 1

    public var version: Int = Config.currentVersion
    public var cluster = Cluster()
    public var servers: [Server] = []
    public var credentials = Credentials()
    public var tls = BackendTLS()
    public var monitor = Monitor()
    public var heartbeat = Heartbeat()
    public var lag = Lag()
    public var admin = Admin()
    /// The SQL proxy; nil when the config has no `proxy` section (or says `enabled: false`).
    public var proxy: Proxy?

    public init() {}

    public struct Cluster: Hashable, Sendable {
        public var name = "default"
    }

    public struct Server: Hashable, Sendable {
        public var name: String
        public var host: String
        public var port: Int
        public init(name: String, host: String, port: Int = 3306) {
            self.name = name
            self.host = host
            self.port = port
        }
    }

    /// A user and where its password comes from (never inline).
    public struct Credential: Hashable, Sendable {
        public var user: String
        public var password: Secret
        public init(user: String, password: Secret) {
            self.user = user
            self.password = password
        }
    }

    public struct Credentials: Hashable, Sendable {
        /// The controller's monitoring account.
        public var monitor: Credential?
        /// The heartbeat writer's account (no READ_ONLY ADMIN, so it can never write on a replica).
        public var heartbeat: Credential?
        /// The replication account (for repointing replicas).
        public var replication: Credential?
    }

    public enum TLSMode: String, Hashable, Sendable, CaseIterable {
        case disabled, required
        case verifyCA = "verify_ca"
        case verifyIdentity = "verify_identity"
    }

    /// TLS from the controller to the servers.
    public struct BackendTLS: Hashable, Sendable {
        public var mode: TLSMode = .verifyIdentity
        public var caFile: String?
        public var certFile: String?
        public var keyFile: String?
    }

    public struct Monitor: Hashable, Sendable {
        public var probeInterval: Duration = .milliseconds(500)
        /// Deadline of one probe; a server that does not answer in time is unreachable.
        public var probeTimeout: Duration = .milliseconds(400)
        public var connectTimeout: Duration = .seconds(2)
        public var readTimeout: Duration = .seconds(2)
    }

    public struct Heartbeat: Hashable, Sendable {
        public var enabled = true
        public var interval: Duration = .milliseconds(250)
        public var schema = "switchyard"
        public var table = "heartbeat"
    }

    public struct Lag: Hashable, Sendable {
        public var historyWindow: Duration = .seconds(600)
    }

    public struct Admin: Hashable, Sendable {
        public var host = "127.0.0.1"
        public var port = 6080
        /// Bearer token for everything but /healthz; required when listening beyond loopback.
        public var token: Secret?
    }
}

extension Config {
    /// The SQL proxy in front of the cluster.
    public struct Proxy: Hashable, Sendable {
        public enum Routing: String, Hashable, Sendable, CaseIterable {
            /// Every statement to the primary.
            case primary
        }

        public enum BackendTLSMode: String, Hashable, Sendable, CaseIterable {
            case disabled, required
            case verifyCA = "verify_ca"
            case verifyIdentity = "verify_identity"
        }

        public var host = "127.0.0.1"
        public var port = 6033
        public var routing: Routing = .primary
        /// The proxy's certificate and key for clients (TLS via SSLRequest); nil offers no TLS to clients.
        public var certFile: String?
        public var keyFile: String?
        /// Asks TLS clients for a certificate, which must be signed by this CA; accounts that `REQUIRE X509`,
        /// `SUBJECT` or `ISSUER` log in through the proxy only with one (the proxy then shows the servers
        /// the top-level `tls.cert_file`). Nil: no certificate is asked for, and such accounts are refused.
        public var clientCAFile: String?
        /// Refuse plaintext logins (needs `cert_file`/`key_file`).
        public var requireTLS = false
        /// TLS from the proxy to the databases; `disabled` must be said explicitly. Verifies against
        /// the top-level `tls.ca_file`.
        public var backendTLS: BackendTLSMode = .verifyIdentity
        /// After login, protect TLS records with Switchyard's own record layer instead of NIOSSL's
        /// (same keys and ciphers, less CPU per statement); false keeps NIOSSL for whole sessions.
        public var tlsFastPath = true
        /// After login, relay sessions' everyday commands with Switchyard's own event loop instead of
        /// SwiftNIO's channel pipeline (less CPU per statement); false keeps every session on SwiftNIO.
        public var fastRelay = true
        /// Event-loop threads for client and server connections; nil: one per core.
        public var threads: Int?
        /// How long a fast-relay thread keeps looking for events before it sleeps; nil: the proxy's default.
        public var relayBusyPoll: Duration?
        public var maxConnections = 1_000
        public var handshakeTimeout: Duration = .seconds(10)
        public var maxPacketSize = 64 * 1024 * 1024
        /// CIDR networks clients may connect from; empty allows every address.
        public var allowedNetworks: [CIDR] = []
        /// Per user name: networks that user may log in from.
        public var userNetworks: [String: [CIDR]] = [:]
        /// Accounts defined in the config (`proxy.users.<name>.password_hash`): logins by these users are
        /// checked against these, not the primary's `mysql.user`.
        public var accounts: [Account] = []
        public var accountRefreshInterval: Duration = .seconds(30)
        /// Failed logins per user and client address within `authThrottleWindow` before further attempts
        /// are refused for the rest of the window; 0 (the default) never throttles.
        public var authThrottleMaxFailures = 0
        public var authThrottleWindow: Duration = .seconds(60)
        public var backendConnectTimeout: Duration = .seconds(5)
        /// How long logins and statements that need a new server connection wait for a reachable primary
        /// (during a failover) before they fail.
        public var failoverHold: Duration = .seconds(10)
    }
}

/// Where a secret comes from.
public enum Secret: Hashable, Sendable, CustomStringConvertible {
    case environment(String)
    case file(String)

    public var description: String {
        switch self {
        case .environment(let name): "environment variable \(name)"
        case .file(let path): "file \(path)"
        }
    }
}
