/// A MySQL GTID set, `uuid:1-5:7-9,uuid2:1-3`, as in `@@gtid_executed`: the second GTID flavor.
/// Intervals are kept sorted, disjoint and non-adjacent, so equal sets compare equal.
public struct MySQLGTIDSet: Hashable, Sendable, CustomStringConvertible {
    public struct ParseError: Error, Hashable, CustomStringConvertible {
        public var text: String
        public var reason: String
        public var description: String { "invalid MySQL GTID set '\(text)': \(reason)" }
    }

    /// Source UUID (lowercased) → sorted disjoint closed intervals of transaction numbers.
    public private(set) var intervals: [String: [ClosedRange<UInt64>]]

    public init() { intervals = [:] }

    public init(parsing text: String) throws(ParseError) {
        self.init()
        for rawElement in text.split(separator: ",") {
            let element = rawElement.trimmingWhitespace()
            if element.isEmpty { continue }
            let parts = element.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count >= 2 else { throw ParseError(text: text, reason: "'\(element)' has no interval") }
            let uuid = parts[0].lowercased()
            guard Self.isUUID(uuid) else { throw ParseError(text: text, reason: "'\(parts[0])' is not a UUID") }
            for part in parts.dropFirst() {
                let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
                guard bounds.count == 1 || bounds.count == 2,
                    let low = UInt64(bounds[0]),
                    let high = bounds.count == 2 ? UInt64(bounds[1]) : low,
                    low >= 1, low <= high
                else { throw ParseError(text: text, reason: "'\(part)' is not an interval like 1-5 or 7") }
                insert(uuid: uuid, low...high)
            }
        }
    }

    private static func isUUID(_ text: String) -> Bool {
        let groups = text.split(separator: "-", omittingEmptySubsequences: false)
        guard groups.map(\.count) == [8, 4, 4, 4, 12] else { return false }
        return groups.allSatisfy { $0.allSatisfy(\.isHexDigit) }
    }

    public mutating func insert(uuid: String, _ range: ClosedRange<UInt64>) {
        var merged: [ClosedRange<UInt64>] = []
        var pending = range
        for existing in intervals[uuid, default: []].sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if existing.upperBound &+ 1 < pending.lowerBound || pending.upperBound &+ 1 < existing.lowerBound {
                merged.append(existing)
            } else {
                pending = min(existing.lowerBound, pending.lowerBound)...max(existing.upperBound, pending.upperBound)
            }
        }
        merged.append(pending)
        intervals[uuid] = merged.sorted { $0.lowerBound < $1.lowerBound }
    }

    public func union(_ other: MySQLGTIDSet) -> MySQLGTIDSet {
        var result = self
        for (uuid, ranges) in other.intervals { for range in ranges { result.insert(uuid: uuid, range) } }
        return result
    }

    /// Transactions in this set that are not in `other`.
    public func subtracting(_ other: MySQLGTIDSet) -> MySQLGTIDSet {
        var result = MySQLGTIDSet()
        for (uuid, ranges) in intervals {
            let holes = other.intervals[uuid] ?? []
            for range in ranges {
                var pieces = [range]
                for hole in holes {
                    pieces = pieces.flatMap { piece -> [ClosedRange<UInt64>] in
                        guard hole.overlaps(piece) else { return [piece] }
                        var out: [ClosedRange<UInt64>] = []
                        if piece.lowerBound < hole.lowerBound { out.append(piece.lowerBound...(hole.lowerBound - 1)) }
                        if piece.upperBound > hole.upperBound { out.append((hole.upperBound + 1)...piece.upperBound) }
                        return out
                    }
                }
                for piece in pieces { result.insert(uuid: uuid, piece) }
            }
        }
        return result
    }

    public func isSubset(of other: MySQLGTIDSet) -> Bool { subtracting(other).isEmpty }

    public var isEmpty: Bool { intervals.values.allSatisfy(\.isEmpty) }

    /// Number of transactions in the set.
    public var count: UInt64 {
        intervals.values.reduce(0) { total, ranges in
            ranges.reduce(total) { $0 + ($1.upperBound - $1.lowerBound + 1) }
        }
    }

    public var description: String {
        intervals.keys.sorted().map { uuid in
            let ranges = intervals[uuid, default: []].map {
                $0.lowerBound == $0.upperBound ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)"
            }
            return ([uuid] + ranges).joined(separator: ":")
        }.joined(separator: ",")
    }
}
