import MetricsTestKit
import Testing

@testable import SQLProxy

@Suite struct ProxyMetricsTests {
    @Test("Per-user login counters stop at 500 labels; later users are counted under _other")
    func userLabelsAreBounded() throws {
        let factory = TestMetrics()
        let metrics = ProxyMetrics(factory: factory)
        for index in 0..<600 { metrics.loggedIn(user: "user\(index)", tlsVersion: "TLSv1.3") }
        metrics.loggedIn(user: "user3", tlsVersion: "TLSv1.3")  // an early user keeps its own label
        let counters = factory.counters(label: "switchyard_proxy_user_connections_total")
        let users = Set(counters.flatMap { $0.dimensions.filter { $0.0 == "user" }.map(\.1) })
        #expect(users.count == ProxyMetrics.maxUserLabels + 1)
        #expect(users.contains("_other") && !users.contains("user500"))
        let other = try factory.expectCounter("switchyard_proxy_user_connections_total", [("user", "_other")])
        #expect(other.values.reduce(0, +) == 100)
        let early = try factory.expectCounter("switchyard_proxy_user_connections_total", [("user", "user3")])
        #expect(early.values.reduce(0, +) == 2)
        #expect(metrics.totals().connectionsTotal == 601)
    }
}
