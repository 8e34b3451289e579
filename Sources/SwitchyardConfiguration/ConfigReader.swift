import Topology
import Yams

/// Walks a YAML node tree, collecting every problem with its key path instead of stopping at the first.
struct ConfigReader {
    var issues: [ConfigIssue] = []

    mutating func fail(_ path: String, _ message: String) {
        issues.append(ConfigIssue(path: path, message: message))
    }

    static func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// The entries of a mapping; unknown keys are reported.
    mutating func mapping(_ node: Node?, _ path: String, allowed: [String]) -> [String: Node] {
        guard let node else { return [:] }
        guard let mapping = node.mapping else {
            fail(path, "expected a mapping with keys \(allowed.joined(separator: ", "))")
            return [:]
        }
        var result: [String: Node] = [:]
        for (keyNode, value) in mapping {
            guard let key = keyNode.string else {
                fail(path, "keys must be strings")
                continue
            }
            if !allowed.contains(key) {
                let hint = Self.closest(to: key, in: allowed).map { " (did you mean '\($0)'?)" } ?? ""
                fail(Self.join(path, key), "unknown key\(hint)")
                continue
            }
            if result[key] != nil { fail(Self.join(path, key), "key appears twice") }
            result[key] = value
        }
        return result
    }

    /// The entries of a mapping whose keys are names chosen by the user (user names, for example).
    mutating func mappingKeys(_ node: Node, _ path: String) -> [(String, Node)] {
        guard let mapping = node.mapping else {
            fail(path, "expected a mapping of names")
            return []
        }
        var result: [(String, Node)] = []
        for (keyNode, value) in mapping {
            guard let key = keyNode.string else {
                fail(path, "keys must be strings")
                continue
            }
            result.append((key, value))
        }
        return result
    }

    mutating func sequence(_ node: Node?, _ path: String) -> [Node]? {
        guard let node else { return nil }
        guard let sequence = node.sequence else {
            fail(path, "expected a list")
            return nil
        }
        return Array(sequence)
    }

    mutating func string(_ node: Node?, _ path: String, nonEmpty: Bool = true) -> String? {
        guard let node else { return nil }
        guard let scalar = node.scalar, node.tag.description != Tag.Name.null.rawValue else {
            fail(path, "expected a string, got \(node.scalar == nil ? Self.show(node) : "null")")
            return nil
        }
        if nonEmpty && scalar.string.isEmpty {
            fail(path, "must not be empty")
            return nil
        }
        return scalar.string
    }

    mutating func int(_ node: Node?, _ path: String, in range: ClosedRange<Int>) -> Int? {
        guard let node else { return nil }
        guard let text = node.scalar?.string, let value = Int(text) else {
            fail(path, "expected an integer, got \(Self.show(node))")
            return nil
        }
        guard range.contains(value) else {
            fail(path, "must be between \(range.lowerBound) and \(range.upperBound), got \(value)")
            return nil
        }
        return value
    }

    mutating func bool(_ node: Node?, _ path: String) -> Bool? {
        guard let node else { return nil }
        switch node.scalar?.string.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            fail(path, "expected true or false, got \(Self.show(node))")
            return nil
        }
    }

    mutating func duration(_ node: Node?, _ path: String, min minimum: Duration, max maximum: Duration) -> Duration? {
        guard let node else { return nil }
        guard let text = node.scalar?.string, let value = Self.parseDuration(text) else {
            fail(path, "expected a duration like 50us, 250ms, 2s or 10m, got \(Self.show(node))")
            return nil
        }
        guard value >= minimum, value <= maximum else {
            fail(path, "must be between \(Self.format(minimum)) and \(Self.format(maximum)), got \(text)")
            return nil
        }
        return value
    }

    mutating func enumeration<E: RawRepresentable & CaseIterable>(_ node: Node?, _ path: String, as type: E.Type)
        -> E? where E.RawValue == String
    {
        guard let node else { return nil }
        guard let text = node.scalar?.string, let value = E(rawValue: text) else {
            let choices = E.allCases.map(\.rawValue).joined(separator: ", ")
            fail(path, "expected one of \(choices), got \(Self.show(node))")
            return nil
        }
        return value
    }

    /// `<prefix>_env` or `<prefix>_file` in `fields`: exactly one must be present when `required`.
    mutating func secret(_ fields: [String: Node], _ path: String, prefix: String, required: Bool) -> Secret? {
        let env = string(fields["\(prefix)_env"], Self.join(path, "\(prefix)_env"))
        let file = string(fields["\(prefix)_file"], Self.join(path, "\(prefix)_file"))
        switch (env, file) {
        case (let env?, nil): return .environment(env)
        case (nil, let file?): return .file(file)
        case (.some, .some):
            fail(path, "set only one of \(prefix)_env and \(prefix)_file")
            return nil
        case (nil, nil):
            if required && fields["\(prefix)_env"] == nil && fields["\(prefix)_file"] == nil {
                fail(path, "missing \(prefix)_env or \(prefix)_file (secrets are never written inline)")
            }
            return nil
        }
    }

    static func show(_ node: Node) -> String {
        if let scalar = node.scalar { return "'\(scalar.string)'" }
        if node.mapping != nil { return "a mapping" }
        return "a list"
    }

    static func parseDuration(_ text: String) -> Duration? {
        let trimmed = text.trimmingCharacters(in: " ")
        let units: [(String, Double)] = [("us", 1e-6), ("µs", 1e-6), ("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        let (number, scale) =
            units.first { trimmed.hasSuffix($0.0) }.map { (trimmed.dropLast($0.0.count), $0.1) } ?? (trimmed[...], 1)
        // (Beyond a century is no duration anyone means, and would overflow the conversion.)
        guard let value = Double(number), value >= 0, value * scale < 3.2e9 else { return nil }
        return .nanoseconds(Int64((value * scale * 1e9).rounded()))
    }

    static func format(_ duration: Duration) -> String {
        if duration.wholeMicroseconds % 1000 != 0 { return "\(duration.wholeMicroseconds)us" }
        let millis = duration.wholeMilliseconds
        if millis % 60_000 == 0 && millis >= 60_000 { return "\(millis / 60_000)m" }
        if millis % 1000 == 0 { return "\(millis / 1000)s" }
        return "\(millis)ms"
    }

    /// A known key within edit distance 2 of `key`, to suggest for typos.
    static func closest(to key: String, in candidates: [String]) -> String? {
        func distance(_ a: [Character], _ b: [Character]) -> Int {
            var previous = Array(0...b.count)
            for (i, ca) in a.enumerated() {
                var current = [i + 1]
                for (j, cb) in b.enumerated() {
                    current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (ca == cb ? 0 : 1)))
                }
                previous = current
            }
            return previous[b.count]
        }
        let scored = candidates.map { ($0, distance(Array(key), Array($0))) }.filter { $0.1 <= 2 }
        return scored.min { $0.1 < $1.1 }?.0
    }
}

extension String {
    func trimmingCharacters(in set: Character) -> String {
        var result = Substring(self)
        while result.first == set { result = result.dropFirst() }
        while result.last == set { result = result.dropLast() }
        return String(result)
    }
}
