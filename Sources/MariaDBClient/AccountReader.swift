public import Topology

extension MariaDBConnection {
    /// Reads every account from `mysql.user` (needs `SELECT ON mysql.*`, which the monitor account has),
    /// and whether the server resolves client host names (`skip_name_resolve`). With
    /// `require_secure_transport` on, every account requires TLS, as the server then refuses every
    /// plaintext TCP login (with 1045).
    public func readAccounts() async throws(MariaDBError) -> AccountTable {
        // One round trip: the settings ride along on every row (with no accounts, nothing needs them).
        let result = try await query(
            "SELECT User AS user, Host AS host, plugin, authentication_string, ssl_type, "
                + "CONVERT(x509_issuer USING utf8mb4) AS issuer, CONVERT(x509_subject USING utf8mb4) AS subject, "
                + "@@skip_name_resolve AS skip, @@require_secure_transport AS secure FROM mysql.user")
        let accounts = result.rows.map { row in
            let tls = row["ssl_type"] ?? ""
            return Account(
                user: row["user"] ?? "", host: row["host"] ?? "", plugin: row["plugin"] ?? "",
                authenticationString: row["authentication_string"] ?? "",
                requiresTLS: !tls.isEmpty || row["secure"] == "1",
                certificate: Self.certificateRequirement(
                    sslType: tls, issuer: row["issuer"] ?? "", subject: row["subject"] ?? ""))
        }
        return AccountTable(accounts: accounts, resolvesNames: result.rows.first?["skip"] == "0")
    }

    /// `ssl_type` X509, or SPECIFIED with an issuer or subject (SPECIFIED with only a cipher requires TLS
    /// alone), needs a certificate.
    static func certificateRequirement(sslType: String, issuer: String, subject: String) -> CertificateRequirement? {
        guard sslType == "X509" || (sslType == "SPECIFIED" && !(issuer.isEmpty && subject.isEmpty)) else {
            return nil
        }
        return CertificateRequirement(issuer: issuer, subject: subject)
    }
}
