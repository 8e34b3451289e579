public import Topology

extension MariaDBConnection {
    /// Reads every account from `mysql.user` (needs `SELECT ON mysql.*`, which the monitor account has),
    /// and whether the server resolves client host names (`skip_name_resolve`).
    public func readAccounts() async throws(MariaDBError) -> AccountTable {
        // One round trip: the setting rides along on every row (with no accounts, nothing needs it).
        let result = try await query(
            "SELECT User AS user, Host AS host, plugin, authentication_string, ssl_type, "
                + "@@skip_name_resolve AS skip FROM mysql.user")
        let accounts = result.rows.map { row in
            Account(
                user: row["user"] ?? "", host: row["host"] ?? "", plugin: row["plugin"] ?? "",
                authenticationString: row["authentication_string"] ?? "",
                requiresTLS: !(row["ssl_type"] ?? "").isEmpty)
        }
        return AccountTable(accounts: accounts, resolvesNames: result.rows.first?["skip"] == "0")
    }
}
