import CMariaDB

/// Calls `mysql_library_init` once, before any handle exists (Swift runs a global's initializer once,
/// thread-safely).
private let libraryInitialized: Bool = mysql_server_init(0, nil, nil) == 0

/// A libmariadb `MYSQL*` and the blocking calls on it.
///
/// `@unchecked Sendable`: the pointer is only ever used from the owning `MariaDBConnection`'s serial
/// dispatch queue (every method here is called from a job on that queue), so no two threads touch the
/// handle at once, which is libmariadb's rule for a `MYSQL*`.
final class NativeHandle: @unchecked Sendable {
    private var mysql: UnsafeMutablePointer<MYSQL>?
    let address: String

    init(address: String) {
        _ = libraryInitialized
        self.address = address
        self.mysql = mysql_init(nil)
    }

    deinit {
        if let mysql { mysql_close(mysql) }
    }

    var isOpen: Bool { mysql != nil }

    func close() {
        if let mysql { mysql_close(mysql) }
        mysql = nil
    }

    private func handle() throws(MariaDBError) -> UnsafeMutablePointer<MYSQL> {
        guard let mysql else {
            throw MariaDBError(code: .closed, message: "connection is closed", server: address)
        }
        return mysql
    }

    private func error(_ code: MariaDBError.Code, _ mysql: UnsafeMutablePointer<MYSQL>) -> MariaDBError {
        let message = String(cString: mysql_error(mysql))
        return MariaDBError(
            code: code, errno: mysql_errno(mysql), sqlState: String(cString: mysql_sqlstate(mysql)),
            message: message.isEmpty ? "unknown error" : message, server: address)
    }

    private func setOption(_ option: mysql_option, _ value: UnsafeRawPointer) throws(MariaDBError) {
        let mysql = try handle()
        if mysql_options(mysql, option, value) != 0 {
            throw MariaDBError(
                code: .invalidArgument, message: "libmariadb refused option \(option.rawValue)", server: address)
        }
    }

    private func setOption(_ option: mysql_option, string: String) throws(MariaDBError) {
        let mysql = try handle()
        let status = string.withCString { mysql_options(mysql, option, $0) }
        if status != 0 {
            throw MariaDBError(
                code: .invalidArgument, message: "libmariadb refused option \(option.rawValue)", server: address)
        }
    }

    /// Sets timeouts and TLS, then logs in. Closes the handle on failure.
    func connect(_ options: ConnectionOptions) throws(MariaDBError) {
        do {
            try configureAndConnect(options)
        } catch {
            close()
            throw error
        }
    }

    private func configureAndConnect(_ options: ConnectionOptions) throws(MariaDBError) {
        let mysql = try handle()
        var connectTimeout = options.connectTimeout.wholeSecondsRoundedUp
        var readTimeout = options.readTimeout.wholeSecondsRoundedUp
        var writeTimeout = options.writeTimeout.wholeSecondsRoundedUp
        try setOption(MYSQL_OPT_CONNECT_TIMEOUT, &connectTimeout)
        try setOption(MYSQL_OPT_READ_TIMEOUT, &readTimeout)
        try setOption(MYSQL_OPT_WRITE_TIMEOUT, &writeTimeout)
        var off: my_bool = 0
        try setOption(MYSQL_OPT_RECONNECT, &off)
        var on: my_bool = 1
        let tls = options.tls
        if tls.mode != .disabled && options.unixSocket == nil {
            if let ca = tls.caFile { try setOption(MYSQL_OPT_SSL_CA, string: ca) }
            if let cert = tls.certificateFile { try setOption(MYSQL_OPT_SSL_CERT, string: cert) }
            if let key = tls.keyFile { try setOption(MYSQL_OPT_SSL_KEY, string: key) }
            try setOption(MYSQL_OPT_SSL_ENFORCE, &on)
            var verify: my_bool = tls.mode == .verifyIdentity ? 1 : 0
            try setOption(MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify)
        }
        let connected = options.host.withCString { host in
            options.user.withCString { user in
                options.password.withCString { password in
                    withOptionalCString(options.database) { database in
                        withOptionalCString(options.unixSocket) { socket in
                            mysql_real_connect(mysql, host, user, password, database, UInt32(options.port), socket, 0)
                        }
                    }
                }
            }
        }
        guard connected != nil else {
            let failure = error(.connect, mysql)
            let lower = failure.message.lowercased()
            if lower.contains("ssl") || lower.contains("tls") || lower.contains("certificate") {
                throw MariaDBError(
                    code: .tls, errno: failure.errno, sqlState: failure.sqlState, message: failure.message,
                    server: address)
            }
            throw failure
        }
        if tls.mode != .disabled && options.unixSocket == nil && mysql_get_ssl_cipher(mysql) == nil {
            throw MariaDBError(
                code: .tls, message: "the connection is not encrypted although TLS is required", server: address)
        }
    }

    /// The negotiated TLS cipher, nil for plaintext.
    var cipher: String? {
        guard let mysql, let cipher = mysql_get_ssl_cipher(mysql) else { return nil }
        return String(cString: cipher)
    }

    /// Runs one statement and reads its whole result.
    func query(_ sql: String) throws(MariaDBError) -> QueryResult {
        let mysql = try handle()
        let length = UInt(sql.utf8.count)
        let status = sql.withCString { text in mysql_real_query(mysql, text, length) }
        if status != 0 { throw error(.query, mysql) }
        guard let result = mysql_store_result(mysql) else {
            if mysql_field_count(mysql) != 0 { throw error(.query, mysql) }
            return QueryResult(columns: [], rows: [], affectedRows: UInt64(mysql_affected_rows(mysql)))
        }
        defer { mysql_free_result(result) }
        let fieldCount = Int(mysql_num_fields(result))
        var columns: [String] = []
        columns.reserveCapacity(fieldCount)
        if let fields = mysql_fetch_fields(result) {
            for index in 0..<fieldCount {
                columns.append(fields[index].name.map { String(cString: $0) } ?? "")
            }
        }
        var rows: [ResultRow] = []
        while let row = mysql_fetch_row(result) {
            guard let lengths = mysql_fetch_lengths(result) else { break }
            var values: [String?] = []
            values.reserveCapacity(fieldCount)
            for index in 0..<fieldCount {
                if let cell = row[index] {
                    let buffer = UnsafeRawBufferPointer(start: cell, count: Int(lengths[index]))
                    values.append(String(decoding: buffer, as: UTF8.self))
                } else {
                    values.append(nil)
                }
            }
            rows.append(ResultRow(columns: columns, values: values))
        }
        if mysql_errno(mysql) != 0 { throw error(.query, mysql) }
        return QueryResult(columns: columns, rows: rows)
    }
}

private func withOptionalCString<R>(_ string: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
    guard let string else { return body(nil) }
    return string.withCString { body($0) }
}
