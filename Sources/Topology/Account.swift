/// A database account as the server stores it (`mysql.user`): who may log in from where, and with which
/// authentication plugin and stored secret. The proxy verifies clients against these.
public struct Account: Hashable, Sendable {
    public var user: String
    /// Host pattern: a name or IP, with `%` and `_` wildcards, or `ip/netmask`.
    public var host: String
    public var plugin: String
    /// The plugin's stored secret (for `mysql_native_password`: `*` and 40 hex digits).
    public var authenticationString: String
    /// `REQUIRE SSL` (or X509, or a specific subject/issuer/cipher): the login must come over TLS.
    public var requiresTLS: Bool
    /// `REQUIRE X509`, `SUBJECT` or `ISSUER`: the client must present a certificate; nil when it need not.
    public var certificate: CertificateRequirement?

    public var requiresCertificate: Bool { certificate != nil }

    public init(
        user: String, host: String, plugin: String, authenticationString: String, requiresTLS: Bool = false,
        certificate: CertificateRequirement? = nil
    ) {
        self.user = user
        self.host = host
        self.plugin = plugin
        self.authenticationString = authenticationString
        self.requiresTLS = requiresTLS || certificate != nil
        self.certificate = certificate
    }
}

/// The certificate an account requires (`REQUIRE X509`, `ISSUER '…'`, `SUBJECT '…'`): one that the server's
/// CA vouches for, with this issuer and subject when they are given. Names are in the server's one-line
/// form, `/C=FI/O=Example/CN=alice`, and compared as exact strings, as the server compares them.
public struct CertificateRequirement: Hashable, Sendable {
    /// Empty: any issuer.
    public var issuer: String
    /// Empty: any subject.
    public var subject: String

    public init(issuer: String = "", subject: String = "") {
        self.issuer = issuer
        self.subject = subject
    }

    /// Why a certificate named `names` does not meet the requirement, or nil when it does.
    public func mismatch(_ names: CertificateNames) -> String? {
        if !issuer.isEmpty, names.issuer != issuer {
            return "issuer is '\(names.issuer)', the account requires '\(issuer)'"
        }
        if !subject.isEmpty, names.subject != subject {
            return "subject is '\(names.subject)', the account requires '\(subject)'"
        }
        return nil
    }
}

/// A certificate's subject and issuer in the server's one-line form (`/C=FI/O=Example/CN=alice`).
public struct CertificateNames: Hashable, Sendable {
    public var subject: String
    public var issuer: String

    public init(subject: String, issuer: String) {
        self.subject = subject
        self.issuer = issuer
    }
}

/// The accounts of a server, and whether it names clients by host name.
public struct AccountTable: Sendable {
    public var accounts: [Account]
    /// Whether the server resolves client addresses to names (`skip_name_resolve` off). Then a client on
    /// the loopback address is `localhost`, and an account `'u'@'localhost'` matches it ahead of
    /// `'u'@'127.0.0.1'`; with `skip_name_resolve` on, `localhost` matches no TCP client at all.
    public var resolvesNames: Bool

    public init(accounts: [Account], resolvesNames: Bool) {
        self.accounts = accounts
        self.resolvesNames = resolvesNames
    }
}

/// Chooses the account a login matches, the way the server orders them: most specific host first
/// (no wildcards, then the later the first wildcard, `%` last), named users before anonymous ones.
/// The proxy's clients come over TCP: `localhost` is a loopback client's name only when the server
/// resolves names (`resolvesNames`), and then it is preferred to the loopback address, as MariaDB does.
public enum AccountMatcher {
    public static func match(
        user: String, clientAddress: String, in accounts: [Account], resolvesNames: Bool
    ) -> Account? {
        accounts
            .filter {
                ($0.user == user || $0.user.isEmpty)
                    && hostMatches(pattern: $0.host, address: clientAddress, resolvesNames: resolvesNames)
            }
            .min { specificity($0) < specificity($1) }
    }

    /// Lower sorts first.
    static func specificity(_ account: Account) -> (Int, Int, Int) {
        let host = Array(account.host)
        let firstWildcard = host.firstIndex { $0 == "%" || $0 == "_" }
        let hostRank = firstWildcard.map { 1_000 - $0 } ?? 0
        return (
            account.host == "%" || account.host.isEmpty ? 10_000 : hostRank, account.user.isEmpty ? 1 : 0,
            account.host.lowercased() == "localhost" ? 0 : 1
        )
    }

    public static func hostMatches(pattern: String, address: String, resolvesNames: Bool) -> Bool {
        if pattern.isEmpty || pattern == "%" { return true }
        if let slash = pattern.firstIndex(of: "/") {
            guard let network = ipv4(pattern[..<slash]), let mask = ipv4(pattern[pattern.index(after: slash)...]),
                let ip = ipv4(Substring(address))
            else { return false }
            return ip & mask == network & mask
        }
        let lowered = Array(pattern.lowercased())
        if resolvesNames, address == "127.0.0.1" || address == "::1", like(lowered, Array("localhost")) {
            return true
        }
        return like(lowered, Array(address.lowercased()))
    }

    private static func ipv4(_ text: Substring) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard let byte = UInt8(part) else { return nil }
            value = value << 8 | UInt32(byte)
        }
        return value
    }

    /// SQL LIKE with `%` (any run) and `_` (one character), iterative to stay linear on hostile patterns.
    private static func like(_ pattern: [Character], _ text: [Character]) -> Bool {
        var p = 0
        var t = 0
        var star: Int?
        var mark = 0
        while t < text.count {
            if p < pattern.count, pattern[p] == "_" || pattern[p] == text[t] {
                p += 1
                t += 1
            } else if p < pattern.count, pattern[p] == "%" {
                star = p
                mark = t
                p += 1
            } else if let star {
                p = star + 1
                mark += 1
                t = mark
            } else {
                return false
            }
        }
        while p < pattern.count, pattern[p] == "%" { p += 1 }
        return p == pattern.count
    }
}
