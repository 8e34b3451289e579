import Testing
import Topology

@Suite("MariaDB GTID lists")
struct MariaDBGTIDTests {
    private func list(_ text: String) throws -> MariaDBGTIDList {
        try MariaDBGTIDList(parsing: text)
    }

    // MARK: Single GTIDs

    @Test func parsesOneGTID() throws {
        let gtid = try #require(MariaDBGTID("0-1-42"))
        #expect(gtid == MariaDBGTID(domain: 0, server: 1, sequence: 42))
        #expect(gtid.description == "0-1-42")
    }

    @Test func parsesLargeNumbers() throws {
        let gtid = try #require(MariaDBGTID("4294967295-4294967295-18446744073709551615"))
        #expect(gtid.domain == UInt32.max)
        #expect(gtid.server == UInt32.max)
        #expect(gtid.sequence == UInt64.max)
    }

    @Test(arguments: ["", "0-1", "a-b-c", "0-1-2-3", "0--1", "0-1-", "-1-2", "0-1-x", "0-4294967296-1", "0 1 2"])
    func rejectsMalformedGTID(_ text: String) {
        #expect(MariaDBGTID(text) == nil)
    }

    // MARK: Lists

    @Test func parsesMultiDomainList() throws {
        let parsed = try list("0-1-100,1-2-5")
        #expect(
            parsed.gtids == [
                MariaDBGTID(domain: 0, server: 1, sequence: 100),
                MariaDBGTID(domain: 1, server: 2, sequence: 5),
            ])
        #expect(parsed.description == "0-1-100,1-2-5")
        #expect(!parsed.isEmpty)
    }

    @Test func ignoresWhitespaceAndNewlinesAsTheServerPrintsThem() throws {
        let parsed = try list(" 0-1-100,\n0-2-7,\n1-2-5 \n")
        #expect(parsed.description == "0-1-100,0-2-7,1-2-5")
        #expect(parsed.gtids.count == 3)
    }

    @Test func keepsTheServersOrder() throws {
        #expect(try list("1-2-5,0-1-100").description == "1-2-5,0-1-100")
    }

    @Test func skipsEmptyElements() throws {
        #expect(try list("0-1-100,,1-2-5,").description == "0-1-100,1-2-5")
    }

    @Test(arguments: ["", " ", "\n", " \n "])
    func emptyTextIsTheEmptyList(_ text: String) throws {
        let parsed = try list(text)
        #expect(parsed.isEmpty)
        #expect(parsed == MariaDBGTIDList())
        #expect(parsed.description == "")
    }

    @Test(arguments: [
        ("0-1", "0-1"),
        ("a-b-c", "a-b-c"),
        ("0-1-2-3", "0-1-2-3"),
        ("0-1-100, 0-1", "0-1"),
        ("0-1-100,\n1-2-x", "1-2-x"),
    ])
    func invalidListNamesTheBadElement(_ text: String, _ element: String) {
        #expect(throws: MariaDBGTIDList.ParseError(text: text, element: element)) {
            try MariaDBGTIDList(parsing: text)
        }
    }

    @Test func parseErrorDescriptionIsReadable() throws {
        let error = try #require(throws: MariaDBGTIDList.ParseError.self) { try list("0-1-5,bogus") }
        #expect(error.description.contains("'bogus'"))
        #expect(error.description.contains("domain-server-sequence"))
    }

    // MARK: Sequences

    @Test func sequenceByDomainTakesTheHighestPerDomain() throws {
        let state = try list("0-1-100,0-2-7,1-2-5,1-3-9")
        #expect(state.sequenceByDomain == [0: 100, 1: 9])
    }

    @Test func sequenceByDomainAndServer() throws {
        let state = try list("0-1-100,0-2-7,1-2-5")
        #expect(
            state.sequenceByDomainAndServer == [
                DomainServer(domain: 0, server: 1): 100,
                DomainServer(domain: 0, server: 2): 7,
                DomainServer(domain: 1, server: 2): 5,
            ])
    }

    @Test func emptyListHasNoSequences() {
        #expect(MariaDBGTIDList().sequenceByDomain.isEmpty)
    }

    // MARK: Containment (rejoin / errant rule)

    @Test func containsLowerOrEqualSequencesOfTheSameDomainAndServer() throws {
        let state = try list("0-1-100,0-2-7,1-2-5")
        #expect(state.contains(try list("0-1-100")))
        #expect(state.contains(try list("0-1-90,0-2-7")))
        #expect(state.contains(try list("1-2-1")))
        #expect(state.contains(state))
        #expect(state.contains(MariaDBGTIDList()))
    }

    @Test func doesNotContainAHigherSequence() throws {
        let state = try list("0-1-100,0-2-7")
        let other = try list("0-1-101")
        #expect(!state.contains(other))
        #expect(state.missing(from: other) == [MariaDBGTID(domain: 0, server: 1, sequence: 101)])
    }

    @Test func aDifferentServerIdInTheSameDomainIsMissing() throws {
        // Same domain, higher overall sequence elsewhere, but server 3 never wrote here: errant.
        let state = try list("0-1-100")
        let other = try list("0-3-1")
        #expect(!state.contains(other))
        #expect(state.missing(from: other) == [MariaDBGTID(domain: 0, server: 3, sequence: 1)])
    }

    @Test func anUnknownDomainIsMissing() throws {
        let state = try list("0-1-100")
        #expect(state.missing(from: try list("0-1-50,2-1-1")) == [MariaDBGTID(domain: 2, server: 1, sequence: 1)])
    }

    @Test func missingListsEveryOffendingGTIDInOrder() throws {
        let state = try list("0-1-100,0-2-7")
        let other = try list("0-2-9,0-1-100,1-5-3")
        #expect(state.missing(from: other).map(\.description) == ["0-2-9", "1-5-3"])
    }

    @Test func emptyListContainsOnlyTheEmptyList() throws {
        #expect(MariaDBGTIDList().contains(MariaDBGTIDList()))
        #expect(!MariaDBGTIDList().contains(try list("0-1-1")))
    }

    // MARK: Distance

    @Test func transactionsBehindInOneDomain() throws {
        #expect(try list("0-1-90").transactionsBehind(try list("0-1-100")) == 10)
    }

    @Test func transactionsBehindSumsOverDomains() throws {
        let replica = try list("0-1-90,1-2-5")
        let primary = try list("0-1-100,1-2-3,2-3-4")
        // domain 0: 10 behind; domain 1: ahead (counts 0, not -2); domain 2: unknown here, 4 behind.
        #expect(replica.transactionsBehind(primary) == 14)
    }

    @Test func transactionsBehindIsNeverNegative() throws {
        let ahead = try list("0-1-200,1-2-50")
        #expect(ahead.transactionsBehind(try list("0-1-100,1-2-5")) == 0)
        #expect(ahead.transactionsBehind(MariaDBGTIDList()) == 0)
    }

    @Test func transactionsBehindUsesTheHighestSequenceAcrossServersOfADomain() throws {
        // After a failover domain 0 continues with server 2; sequence numbers stay per domain.
        let replica = try list("0-1-100")
        let primary = try list("0-1-100,0-2-104")
        #expect(replica.transactionsBehind(primary) == 4)
    }

    @Test func emptyPositionIsBehindByTheWholeSequence() throws {
        #expect(MariaDBGTIDList().transactionsBehind(try list("0-1-100,1-1-20")) == 120)
    }
}
