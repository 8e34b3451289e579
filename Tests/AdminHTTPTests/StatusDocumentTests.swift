import Foundation
import Testing
import Topology

@testable import AdminHTTP

/// The JSON of `GET /v1/status` is an API (and `switchyard status --json` prints its proxy object as it
/// is): its keys and their spelling must not change.
@Suite struct StatusDocumentTests {
    private let snapshot = ClusterSnapshot(
        cluster: "main", epoch: 3, primary: "db1", servers: [], anomalies: [], generatedAtMicros: 1_700_000_000_123_456)

    private func proxy(primary: String?) -> StatusDocument.Proxy {
        StatusDocument.Proxy(
            listen: "0.0.0.0:3306", primary: primary, connectionsCurrent: 1, connectionsTotal: 2, statementsTotal: 3,
            bytesFromClients: 4, bytesToClients: 5, errorsTotal: 6, failedLogins: 7, sessionsMoved: 8, sessionsEnded: 9)
    }

    /// As `AdminServer.json` encodes it.
    private func json(_ document: StatusDocument) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(document), as: UTF8.self)
    }

    @Test("The proxy's counters keep their snake_case keys; a null primary is left out")
    func proxyKeys() throws {
        let expected =
            #"{"anomalies":[],"cluster":"main","epoch":3,"generated_at_ms":1700000000123,"primary":"db1","#
            + #""proxy":{"bytes_from_clients":4,"bytes_to_clients":5,"connections_current":1,"connections_total":2,"#
            + #""errors_total":6,"failed_logins":7,"listen":"0.0.0.0:3306","primary":"db1","sessions_ended":9,"#
            + #""sessions_moved":8,"statements_total":3},"servers":[]}"#
        #expect(try json(StatusDocument(snapshot, proxy: proxy(primary: "db1"))) == expected)
        #expect(
            try json(StatusDocument(snapshot, proxy: proxy(primary: nil)))
                == expected.replacingOccurrences(of: #""primary":"db1","sessions_ended""#, with: #""sessions_ended""#))
        #expect(
            try json(StatusDocument(snapshot))
                == #"{"anomalies":[],"cluster":"main","epoch":3,"generated_at_ms":1700000000123,"primary":"db1","#
                + #""servers":[]}"#)
    }

    @Test("The CLI reads the document back as it was sent")
    func roundTrip() throws {
        for document in [StatusDocument(snapshot, proxy: proxy(primary: "db1")), StatusDocument(snapshot)] {
            let decoded = try JSONDecoder().decode(StatusDocument.self, from: Data(try json(document).utf8))
            #expect(decoded == document)
        }
    }
}
