/// One MariaDB global transaction id, `domain-server-sequence` (for example `0-1-42`).
public struct MariaDBGTID: Hashable, Sendable, CustomStringConvertible {
    public var domain: UInt32
    public var server: UInt32
    public var sequence: UInt64

    public init(domain: UInt32, server: UInt32, sequence: UInt64) {
        self.domain = domain
        self.server = server
        self.sequence = sequence
    }

    /// Parses `D-S-N`; returns nil for anything else.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3,
            let domain = UInt32(parts[0]),
            let server = UInt32(parts[1]),
            let sequence = UInt64(parts[2])
        else { return nil }
        self.init(domain: domain, server: server, sequence: sequence)
    }

    public var description: String { "\(domain)-\(server)-\(sequence)" }
}

/// A MariaDB GTID list as the server prints it in `@@gtid_binlog_pos`, `@@gtid_current_pos`,
/// `@@gtid_slave_pos` (one GTID per domain) or `@@gtid_binlog_state` (one per domain and server).
public struct MariaDBGTIDList: Hashable, Sendable, CustomStringConvertible {
    public struct ParseError: Error, Hashable, CustomStringConvertible {
        public var text: String
        public var element: String
        public init(text: String, element: String) {
            self.text = text
            self.element = element
        }
        public var description: String { "invalid GTID '\(element)' in '\(text)' (expected domain-server-sequence)" }
    }

    /// The GTIDs in the order the server printed them.
    public private(set) var gtids: [MariaDBGTID]

    public init(_ gtids: [MariaDBGTID] = []) {
        self.gtids = gtids
    }

    /// Parses a comma-separated list; whitespace and newlines around elements are ignored, the empty
    /// string is the empty list.
    public init(parsing text: String) throws(ParseError) {
        var result: [MariaDBGTID] = []
        for raw in text.split(separator: ",") {
            let element = raw.trimmingWhitespace()
            if element.isEmpty { continue }
            guard let gtid = MariaDBGTID(element) else {
                throw ParseError(text: text, element: String(element))
            }
            result.append(gtid)
        }
        self.gtids = result
    }

    public var isEmpty: Bool { gtids.isEmpty }

    /// The highest sequence number seen per replication domain.
    public var sequenceByDomain: [UInt32: UInt64] {
        var result: [UInt32: UInt64] = [:]
        for gtid in gtids { result[gtid.domain] = max(result[gtid.domain] ?? 0, gtid.sequence) }
        return result
    }

    /// The highest sequence number seen per (domain, server) pair.
    public var sequenceByDomainAndServer: [DomainServer: UInt64] {
        var result: [DomainServer: UInt64] = [:]
        for gtid in gtids {
            let key = DomainServer(domain: gtid.domain, server: gtid.server)
            result[key] = max(result[key] ?? 0, gtid.sequence)
        }
        return result
    }

    /// True when every `D-S-N` of `other` has a `D-S-M` here with `M >= N`: the containment rule that
    /// guards rejoin and detects errant transactions (apply it to `@@gtid_binlog_state` lists).
    public func contains(_ other: MariaDBGTIDList) -> Bool {
        missing(from: other).isEmpty
    }

    /// The GTIDs of `other` that this list does not contain (see `contains(_:)`).
    public func missing(from other: MariaDBGTIDList) -> [MariaDBGTID] {
        let mine = sequenceByDomainAndServer
        return other.gtids.filter { gtid in
            guard let have = mine[DomainServer(domain: gtid.domain, server: gtid.server)] else { return true }
            return have < gtid.sequence
        }
    }

    /// Transactions this position is behind `ahead`, summed over domains (never negative per domain).
    /// Sequence numbers are per domain and strictly increasing under `gtid_strict_mode`.
    public func transactionsBehind(_ ahead: MariaDBGTIDList) -> UInt64 {
        let mine = sequenceByDomain
        var total: UInt64 = 0
        for (domain, sequence) in ahead.sequenceByDomain {
            let have = mine[domain] ?? 0
            if sequence > have { total += sequence - have }
        }
        return total
    }

    public var description: String { gtids.map(\.description).joined(separator: ",") }
}

public struct DomainServer: Hashable, Sendable {
    public var domain: UInt32
    public var server: UInt32
    public init(domain: UInt32, server: UInt32) {
        self.domain = domain
        self.server = server
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> Substring {
        let scalars = self[...]
        var start = scalars.startIndex
        var end = scalars.endIndex
        while start < end, scalars[start].isWhitespace { start = scalars.index(after: start) }
        while end > start, scalars[scalars.index(before: end)].isWhitespace { end = scalars.index(before: end) }
        return Substring(scalars[start..<end])
    }
}
