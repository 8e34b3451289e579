public import Topology

extension MariaDBConnection {
    /// Reads every account from `mysql.user` (needs `SELECT ON mysql.*`, which the monitor account has),
    /// and whether the server resolves client host names (`skip_name_resolve`).
    public func readAccounts() async throws(MariaDBError) -> AccountTable {
        let naming = try await query("SELECT @@skip_name_resolve AS skip")
        let result = try await query(
            "SELECT User AS user, Host AS host, plugin, authentication_string, ssl_type FROM mysql.user")
        let accounts = result.rows.map { row in
            Account(
                user: row["user"] ?? "", host: row["host"] ?? "", plugin: row["plugin"] ?? "",
                authenticationString: row["authentication_string"] ?? "",
                requiresTLS: !(row["ssl_type"] ?? "").isEmpty)
        }
        return AccountTable(accounts: accounts, resolvesNames: naming.rows.first?["skip"] == "0")
    }
}
