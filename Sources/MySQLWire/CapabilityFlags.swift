/// Client/server capability flags. The low 32 bits are the MySQL set; MariaDB puts its extended
/// capabilities in the upper 32 bits (sent separately in the handshake's filler bytes).
public struct CapabilityFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public static let longPassword = Self(rawValue: 1 << 0)
    public static let foundRows = Self(rawValue: 1 << 1)
    public static let longFlag = Self(rawValue: 1 << 2)
    public static let connectWithDB = Self(rawValue: 1 << 3)
    public static let noSchema = Self(rawValue: 1 << 4)
    public static let compress = Self(rawValue: 1 << 5)
    public static let odbc = Self(rawValue: 1 << 6)
    public static let localFiles = Self(rawValue: 1 << 7)
    public static let ignoreSpace = Self(rawValue: 1 << 8)
    public static let protocol41 = Self(rawValue: 1 << 9)
    public static let interactive = Self(rawValue: 1 << 10)
    public static let ssl = Self(rawValue: 1 << 11)
    public static let ignoreSigpipe = Self(rawValue: 1 << 12)
    public static let transactions = Self(rawValue: 1 << 13)
    public static let reserved = Self(rawValue: 1 << 14)
    public static let secureConnection = Self(rawValue: 1 << 15)
    public static let multiStatements = Self(rawValue: 1 << 16)
    public static let multiResults = Self(rawValue: 1 << 17)
    public static let psMultiResults = Self(rawValue: 1 << 18)
    public static let pluginAuth = Self(rawValue: 1 << 19)
    public static let connectAttributes = Self(rawValue: 1 << 20)
    public static let pluginAuthLengthEncodedClientData = Self(rawValue: 1 << 21)
    public static let canHandleExpiredPasswords = Self(rawValue: 1 << 22)
    public static let sessionTrack = Self(rawValue: 1 << 23)
    public static let deprecateEOF = Self(rawValue: 1 << 24)
    public static let sslVerifyServerCertificate = Self(rawValue: 1 << 30)
    public static let rememberOptions = Self(rawValue: 1 << 31)

    /// MariaDB: the client takes progress reports (ERR packets with error code 0xFFFF) while a long
    /// statement runs (`ALTER TABLE`, `LOAD DATA`, `CREATE INDEX`).
    public static let mariaDBProgress = Self(rawValue: 1 << 32)
    /// MariaDB: `COM_STMT_BULK_EXECUTE` and array binding.
    public static let mariaDBStatementBulkOperations = Self(rawValue: 1 << (32 + 2))
    /// MariaDB: extended type information in column definitions.
    public static let mariaDBExtendedTypeInfo = Self(rawValue: 1 << (32 + 3))
    /// MariaDB: result-set metadata may be skipped on execute.
    public static let mariaDBCacheMetadata = Self(rawValue: 1 << (32 + 4))

    /// The capabilities both sides agreed on: what every later packet is decoded with.
    public func negotiated(with other: CapabilityFlags) -> CapabilityFlags { intersection(other) }

    public var lower: UInt32 { UInt32(truncatingIfNeeded: rawValue) }
    public var upper: UInt32 { UInt32(truncatingIfNeeded: rawValue >> 32) }
}
