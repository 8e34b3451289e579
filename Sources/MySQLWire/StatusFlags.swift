/// Server status flags carried by OK and EOF packets: the source of truth for transaction state.
public struct StatusFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let inTransaction = Self(rawValue: 0x0001)
    public static let autocommit = Self(rawValue: 0x0002)
    public static let moreResultsExist = Self(rawValue: 0x0008)
    public static let noGoodIndexUsed = Self(rawValue: 0x0010)
    public static let noIndexUsed = Self(rawValue: 0x0020)
    public static let cursorExists = Self(rawValue: 0x0040)
    public static let lastRowSent = Self(rawValue: 0x0080)
    public static let databaseDropped = Self(rawValue: 0x0100)
    public static let noBackslashEscapes = Self(rawValue: 0x0200)
    public static let metadataChanged = Self(rawValue: 0x0400)
    public static let queryWasSlow = Self(rawValue: 0x0800)
    public static let psOutParams = Self(rawValue: 0x1000)
    public static let inReadOnlyTransaction = Self(rawValue: 0x2000)
    public static let sessionStateChanged = Self(rawValue: 0x4000)
}
