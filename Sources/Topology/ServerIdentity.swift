/// How the controller knows a server: the name from the config and the address it connects to.
public struct ServerIdentity: Hashable, Sendable, CustomStringConvertible {
    public var name: String
    public var host: String
    public var port: Int

    public init(name: String, host: String, port: Int) {
        self.name = name
        self.host = host
        self.port = port
    }

    public var address: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    public var description: String { "\(name) (\(address))" }
}

public enum ServerFlavor: String, Hashable, Sendable, Codable {
    case mariadb
    case mysql

    /// Flavor from `@@version` / `@@version_comment`.
    public init(version: String, versionComment: String = "") {
        let text = (version + " " + versionComment).lowercased()
        self = text.contains("mariadb") ? .mariadb : .mysql
    }
}

/// A binlog file and offset, ordered by file sequence number, then offset.
public struct BinlogCoordinates: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var file: String
    public var position: UInt64

    public init(file: String, position: UInt64) {
        self.file = file
        self.position = position
    }

    /// The numeric suffix of `mysql-bin.000042`, or nil when there is none.
    public var fileNumber: UInt64? {
        guard let dot = file.lastIndex(of: ".") else { return nil }
        return UInt64(file[file.index(after: dot)...])
    }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        if lhs.file != rhs.file {
            if let left = lhs.fileNumber, let right = rhs.fileNumber { return left < right }
            return lhs.file < rhs.file
        }
        return lhs.position < rhs.position
    }

    public var description: String { "\(file):\(position)" }
}
