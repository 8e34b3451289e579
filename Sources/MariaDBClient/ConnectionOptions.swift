/// How to verify the server's TLS certificate.
public enum TLSMode: String, Hashable, Sendable, CaseIterable {
    /// Plaintext. Must be chosen explicitly.
    case disabled
    /// Encrypt; do not verify the certificate (still never falls back to plaintext).
    case required
    /// Encrypt and verify the chain against the CA, not the host name.
    case verifyCA = "verify_ca"
    /// Encrypt, verify the chain and that the certificate names the host (the default).
    case verifyIdentity = "verify_identity"
}

public struct TLSOptions: Hashable, Sendable {
    public var mode: TLSMode
    public var caFile: String?
    public var certificateFile: String?
    public var keyFile: String?

    public init(
        mode: TLSMode = .verifyIdentity, caFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil
    ) {
        self.mode = mode
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
    }
}

/// Everything needed to open a connection. Timeouts are always set; libmariadb rounds them up to whole
/// seconds, so each operation also has a precise deadline of its own (see `MariaDBConnection`).
public struct ConnectionOptions: Hashable, Sendable {
    public var host: String
    public var port: Int
    public var user: String
    public var password: String
    public var database: String?
    public var tls: TLSOptions
    public var connectTimeout: Duration
    public var readTimeout: Duration
    public var writeTimeout: Duration
    /// Unix socket path; when set, host and port are ignored (used for root on sandbox instances).
    public var unixSocket: String?

    public init(
        host: String,
        port: Int,
        user: String,
        password: String,
        database: String? = nil,
        tls: TLSOptions = TLSOptions(),
        connectTimeout: Duration = .seconds(2),
        readTimeout: Duration = .seconds(2),
        writeTimeout: Duration = .seconds(2),
        unixSocket: String? = nil
    ) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
        self.tls = tls
        self.connectTimeout = connectTimeout
        self.readTimeout = readTimeout
        self.writeTimeout = writeTimeout
        self.unixSocket = unixSocket
    }

    public var address: String { unixSocket ?? (host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)") }
}

extension Duration {
    /// Whole seconds, rounded up, at least 1: libmariadb's timeout unit.
    var wholeSecondsRoundedUp: UInt32 {
        let parts = components
        let seconds = parts.seconds + (parts.attoseconds > 0 ? 1 : 0)
        return UInt32(clamping: max(seconds, 1))
    }
}
