import MySQLWire
import NIOCore
import NIOSSL
public import Topology

/// Everything the proxy needs to know, resolved from the config by the composition root.
public struct ProxySettings: Sendable {
    public var host = "127.0.0.1"
    public var port = 6033
    /// Refuse logins that did not upgrade to TLS first (ERR 3159, like the server's require_secure_transport).
    public var requireTLS = false
    /// The proxy's own certificate for clients; nil means TLS is not offered to clients.
    public var serverTLS: CertificateFiles?
    /// Clients presenting a certificate must have one this CA vouches for; with it set, the proxy asks TLS
    /// clients for a certificate (optional: accounts that `REQUIRE X509`, `SUBJECT` or `ISSUER` need one).
    /// Nil: the proxy asks for none, and refuses such accounts.
    public var clientCAFile: String?
    /// How the proxy talks to the databases.
    public var backendTLS: BackendTLS = .disabled
    /// The certificate the proxy shows the databases (a TLS client certificate), for accounts that require
    /// one; nil shows none.
    public var backendCertificate: CertificateFiles?
    /// After login, each TLS hop switches from NIOSSL to `TLSRecordLayer`'s record handler.
    public var tlsFastPath = true
    /// After login, quiet sessions' everyday commands are relayed by `FastRelay`, outside NIO's pipeline.
    public var fastRelay = true
    /// Event-loop threads, and as many fast-relay threads; each session (client and server connection) lives
    /// on one of them. One per core by default: with fewer, a single relay thread is the queue every answer
    /// waits in (ten paired rounds on 2 cores: read-only transactions from 4 clients at 0.97 of HAProxy's tps
    /// with 2 threads, 0.77 with 1 busy-polling thread; runbooks/proxy.md, "Threads and CPU").
    public var threads = max(1, System.coreCount)
    /// While a server owes one of its sessions an answer, a fast-relay thread that has dealt with its events
    /// keeps looking for more this long, yielding the CPU between looks, before it sleeps: an answer that
    /// comes back within it skips a wake-up, which on a busy machine costs the answer a wait for a CPU.
    /// Costs CPU time nothing else wanted (runbooks/proxy.md, "Busy polling"). Off (zero) by default: with a
    /// relay thread per core, both cores spinning took CPU the database needed.
    public var relayBusyPoll: Duration = .zero
    public var maxConnections = 1_000
    /// A client that has not finished logging in by then is disconnected.
    public var handshakeTimeout: Duration = .seconds(10)
    /// Networks allowed to connect at all; empty allows every address.
    public var allowedNetworks: [CIDR] = []
    /// Per user: networks that user may connect from (users not listed are not restricted here).
    public var userNetworks: [String: [CIDR]] = [:]
    /// Largest packet a client may send (`max_allowed_packet`); larger ones get ERR 1153.
    public var maxPacketSize = 64 * 1024 * 1024
    /// Failed logins per user and client address within `authThrottleWindow` before further attempts
    /// are refused; 0 turns throttling off (the default, like the server).
    public var authThrottleMaxFailures = 0
    public var authThrottleWindow: Duration = .seconds(60)
    public var backendConnectTimeout: Duration = .seconds(5)
    /// While no primary is known or it cannot be reached (a failover), logins and statements that need a
    /// new server connection wait up to this long instead of failing.
    public var failoverHold: Duration = .seconds(10)

    public init() {}

    public struct CertificateFiles: Sendable, Hashable {
        public var certificateFile: String
        public var keyFile: String
        public init(certificateFile: String, keyFile: String) {
            self.certificateFile = certificateFile
            self.keyFile = keyFile
        }
    }

    public enum BackendTLS: Sendable, Hashable {
        /// Plaintext to the databases; only when configured explicitly.
        case disabled
        /// TLS, with the server's certificate checked against `caFile` (and its name or IP with `verifyHostname`).
        case verified(caFile: String, verifyHostname: Bool)
        /// TLS without checking the server's certificate.
        case unverified
    }
}
