import Testing
import Topology

@Suite("MySQL GTID sets")
struct MySQLGTIDSetTests {
    private static let uuidA = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
    private static let uuidB = "8a94f357-aab4-11df-86ab-c80aa9429562"

    private func set(_ text: String) throws -> MySQLGTIDSet {
        try MySQLGTIDSet(parsing: text)
    }

    @Test func parsesSeveralSourcesAndIntervals() throws {
        let parsed = try set("\(Self.uuidA):1-5:7-9,\(Self.uuidB):1-3")
        #expect(parsed.intervals == [Self.uuidA: [1...5, 7...9], Self.uuidB: [1...3]])
        #expect(parsed.count == 11)
        #expect(!parsed.isEmpty)
    }

    @Test func singleTransactionIsAOneElementInterval() throws {
        let parsed = try set("\(Self.uuidA):7")
        #expect(parsed.intervals == [Self.uuidA: [7...7]])
        #expect(parsed.description == "\(Self.uuidA):7")
        #expect(parsed.count == 1)
    }

    @Test func emptyTextIsTheEmptySet() throws {
        let parsed = try set("")
        #expect(parsed.isEmpty)
        #expect(parsed.count == 0)
        #expect(parsed.description == "")
        #expect(parsed == MySQLGTIDSet())
    }

    @Test func ignoresWhitespaceAndNewlinesBetweenElements() throws {
        let parsed = try set("\(Self.uuidA):1-5,\n \(Self.uuidB):1-3\n")
        #expect(parsed.description == "\(Self.uuidA):1-5,\(Self.uuidB):1-3")
    }

    @Test func uppercaseUUIDIsNormalised() throws {
        let parsed = try set("\(Self.uuidA.uppercased()):1-5")
        #expect(parsed.intervals.keys.sorted() == [Self.uuidA])
        #expect(parsed == (try set("\(Self.uuidA):1-5")))
    }

    @Test func sameSourceInTwoElementsIsMerged() throws {
        let parsed = try set("\(Self.uuidA):1-3,\(Self.uuidA.uppercased()):4-6")
        #expect(parsed.intervals == [Self.uuidA: [1...6]])
    }

    @Test(
        arguments: [
            ("1-5:6-9", [1...9]),  // adjacent
            ("1-5:3-7", [1...7]),  // overlapping
            ("1-9:3-4", [1...9]),  // contained
            ("7-9:1-5", [1...5, 7...9]),  // out of order, disjoint
            ("10:1-3:5:4", [1...5, 10...10]),  // single ids bridging a gap
            ("1-2:8-9:3-7", [1...9]),  // one interval joins two
        ] as [(String, [ClosedRange<UInt64>])])
    func mergesIntervals(_ intervals: String, _ expected: [ClosedRange<UInt64>]) throws {
        #expect(try set("\(Self.uuidA):\(intervals)").intervals[Self.uuidA] == expected)
    }

    @Test func equalSetsCompareEqualWhateverTheSpelling() throws {
        #expect(try set("\(Self.uuidA):1-3:4-5") == (try set("\(Self.uuidA):1-5")))
        #expect(try set("\(Self.uuidB):1,\(Self.uuidA):2") == (try set("\(Self.uuidA):2,\(Self.uuidB):1")))
    }

    @Test(arguments: [
        "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7-9,8a94f357-aab4-11df-86ab-c80aa9429562:1-3",
        "3e11fa47-71ca-11e1-9e33-c80aa9429562:1",
        "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-18446744073709551614",
    ])
    func descriptionRoundTrips(_ text: String) throws {
        let parsed = try set(text)
        #expect(parsed.description == text)
        #expect(try set(parsed.description) == parsed)
    }

    @Test func descriptionSortsSourcesByUUID() throws {
        let parsed = try set("\(Self.uuidB):1-3,\(Self.uuidA):4")
        #expect(parsed.description == "\(Self.uuidA):4,\(Self.uuidB):1-3")
    }

    @Test func union() throws {
        let left = try set("\(Self.uuidA):1-5")
        let right = try set("\(Self.uuidA):6-8:10,\(Self.uuidB):1-2")
        let both = left.union(right)
        #expect(both.description == "\(Self.uuidA):1-8:10,\(Self.uuidB):1-2")
        #expect(both.count == 11)
        #expect(right.union(left) == both)
        #expect(left.union(MySQLGTIDSet()) == left)
    }

    @Test func subtractingPunchesHoles() throws {
        let all = try set("\(Self.uuidA):1-10,\(Self.uuidB):1-3")
        let some = try set("\(Self.uuidA):3-4:8,\(Self.uuidB):1-3")
        let rest = all.subtracting(some)
        #expect(rest.intervals == [Self.uuidA: [1...2, 5...7, 9...10]])
        #expect(rest.description == "\(Self.uuidA):1-2:5-7:9-10")
        #expect(rest.count == 7)
    }

    @Test func subtractingAtTheEdgesAndBeyond() throws {
        let all = try set("\(Self.uuidA):5-10")
        #expect(all.subtracting(try set("\(Self.uuidA):1-5")).description == "\(Self.uuidA):6-10")
        #expect(all.subtracting(try set("\(Self.uuidA):10-20")).description == "\(Self.uuidA):5-9")
        #expect(all.subtracting(try set("\(Self.uuidA):1-20")).isEmpty)
        #expect(all.subtracting(try set("\(Self.uuidB):1-20")) == all)
        #expect(all.subtracting(MySQLGTIDSet()) == all)
    }

    @Test func subtractingEverythingIsEmpty() throws {
        let all = try set("\(Self.uuidA):1-5:7-9,\(Self.uuidB):1-3")
        let none = all.subtracting(all)
        #expect(none.isEmpty)
        #expect(none.count == 0)
        #expect(none == MySQLGTIDSet())
    }

    @Test func isSubset() throws {
        let executed = try set("\(Self.uuidA):1-100,\(Self.uuidB):1-3")
        #expect(try set("\(Self.uuidA):5-9:50").isSubset(of: executed))
        #expect(executed.isSubset(of: executed))
        #expect(MySQLGTIDSet().isSubset(of: executed))
        #expect(!(try set("\(Self.uuidA):100-101")).isSubset(of: executed))
        #expect(!(try set("\(Self.uuidB):1,\(Self.uuidA):1")).isSubset(of: try set("\(Self.uuidA):1-5")))
        #expect(!executed.isSubset(of: MySQLGTIDSet()))
    }

    @Test func insertMergesWithNeighbours() {
        var gtids = MySQLGTIDSet()
        gtids.insert(uuid: Self.uuidA, 1...3)
        gtids.insert(uuid: Self.uuidA, 7...9)
        gtids.insert(uuid: Self.uuidA, 4...6)
        #expect(gtids.intervals[Self.uuidA] == [1...9])
        #expect(gtids.count == 9)
    }

    @Test(arguments: [
        "3e11fa47-71ca-11e1-9e33-c80aa942956:1-5",  // last group too short
        "3e11fa4771ca11e19e33c80aa9429562:1-5",  // no dashes
        "3e11fa47-71ca-11e1-9e33-c80aa942956g:1-5",  // not hex
        "not-a-uuid:1",
    ])
    func rejectsInvalidUUID(_ text: String) throws {
        let error = try #require(throws: MySQLGTIDSet.ParseError.self) { try set(text) }
        #expect(error.reason.contains("is not a UUID"))
        #expect(error.text == text)
    }

    @Test(arguments: ["5-1", "0-3", "0", "a", "1-", "-3", "1-2-3", ""])
    func rejectsInvalidInterval(_ interval: String) throws {
        let error = try #require(throws: MySQLGTIDSet.ParseError.self) { try set("\(Self.uuidA):1-2:\(interval)") }
        #expect(error.reason.contains("is not an interval"))
        #expect(error.description.hasPrefix("invalid MySQL GTID set"))
    }

    @Test func rejectsASourceWithoutInterval() throws {
        let error = try #require(throws: MySQLGTIDSet.ParseError.self) { try set(Self.uuidA) }
        #expect(error.reason.contains("has no interval"))
    }
}
