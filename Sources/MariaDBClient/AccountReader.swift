public import Topology

extension MariaDBConnection {
    /// Reads every account from `mysql.user` (needs `SELECT ON mysql.*`, which the monitor account has).
    public func readAccounts() async throws(MariaDBError) -> [Account] {
        let result = try await query(
            "SELECT User AS user, Host AS host, plugin, authentication_string, ssl_type FROM mysql.user")
        return result.rows.map { row in
            Account(
                user: row["user"] ?? "", host: row["host"] ?? "", plugin: row["plugin"] ?? "",
                authenticationString: row["authentication_string"] ?? "",
                requiresTLS: !(row["ssl_type"] ?? "").isEmpty)
        }
    }
}
