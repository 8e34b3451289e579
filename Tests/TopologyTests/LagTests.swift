import Testing
import Topology

@Suite("Lag window, sparkline and heartbeat lag")
struct LagTests {
    private static let t0: Int64 = 1_700_000_000_000_000  // µs since the epoch
    private static let second: Int64 = 1_000_000
    private static let milli: Int64 = 1_000

    private static func sample(_ atSeconds: Int64, _ lagMillis: Int64) -> LagWindow.Sample {
        LagWindow.Sample(atMicros: t0 + atSeconds * second, lagMillis: lagMillis)
    }

    // MARK: LagWindow

    @Test func emptyWindowHasNoStatistics() {
        let window = LagWindow(window: .seconds(60))
        #expect(window.statistics == nil)
        #expect(window.current.isEmpty)
        #expect(window.recent(10).isEmpty)
    }

    @Test func windowLengthInMicroseconds() {
        #expect(LagWindow(window: .seconds(600)).windowMicros == 600 * Self.second)
        #expect(LagWindow(window: .milliseconds(1500)).windowMicros == 1_500_000)
    }

    @Test func singleSample() throws {
        var window = LagWindow(window: .seconds(60))
        window.append(Self.sample(0, 42))
        let statistics = try #require(window.statistics)
        #expect(statistics.count == 1)
        #expect(statistics.p50Millis == 42)
        #expect(statistics.p99Millis == 42)
        #expect(statistics.maxMillis == 42)
    }

    @Test func nearestRankPercentilesOfTenSamples() throws {
        var window = LagWindow(window: .seconds(60))
        // Appended out of value order: percentiles sort.
        for (index, lag) in [70, 10, 100, 40, 20, 90, 30, 60, 50, 80].enumerated() {
            window.append(Self.sample(Int64(index), Int64(lag)))
        }
        let statistics = try #require(window.statistics)
        #expect(statistics.count == 10)
        #expect(statistics.p50Millis == 50)  // rank ⌈0.5·10⌉ = 5
        #expect(statistics.p99Millis == 100)  // rank ⌈0.99·10⌉ = 10
        #expect(statistics.maxMillis == 100)
    }

    @Test func nearestRankPercentilesOfAHundredSamples() throws {
        var window = LagWindow(window: .seconds(600))
        for value in (1...100).reversed() { window.append(Self.sample(Int64(100 - value), Int64(value))) }
        let statistics = try #require(window.statistics)
        #expect(statistics.count == 100)
        #expect(statistics.p50Millis == 50)
        #expect(statistics.p99Millis == 99)
        #expect(statistics.maxMillis == 100)
    }

    @Test func nearestRankPercentilesOfAnOddCount() throws {
        var window = LagWindow(window: .seconds(60))
        for (index, lag) in [5, 1, 3].enumerated() { window.append(Self.sample(Int64(index), Int64(lag))) }
        let statistics = try #require(window.statistics)
        #expect(statistics.p50Millis == 3)  // rank ⌈1.5⌉ = 2
        #expect(statistics.p99Millis == 5)
    }

    @Test func samplesOlderThanTheWindowAreEvicted() throws {
        var window = LagWindow(window: .seconds(10))
        window.append(Self.sample(0, 900))
        window.append(Self.sample(5, 20))
        window.append(Self.sample(10, 30))  // cutoff 0: the sample at 0 is exactly 10 s old and stays
        #expect(window.current.map(\.lagMillis) == [900, 20, 30])
        window.append(Self.sample(11, 40))  // cutoff 1 s: the sample at 0 goes
        #expect(window.current.map(\.lagMillis) == [20, 30, 40])
        let statistics = try #require(window.statistics)
        #expect(statistics.count == 3)
        #expect(statistics.maxMillis == 40)
        window.append(Self.sample(100, 5))  // everything else is older than 90 s
        #expect(window.current == [Self.sample(100, 5)])
        #expect(window.statistics?.count == 1)
        #expect(window.statistics?.maxMillis == 5)
    }

    @Test func evictionKeepsWorkingOverManySamples() throws {
        var window = LagWindow(window: .seconds(10))
        for tick in 0..<5_000 { window.append(Self.sample(Int64(tick), Int64(tick % 7))) }
        // Samples from 4989 to 4999 are within 10 s of the last one.
        #expect(window.current.count == 11)
        #expect(window.current.first?.atMicros == Self.t0 + 4_989 * Self.second)
        #expect(window.statistics?.count == 11)
    }

    @Test func recentReturnsTheNewestOldestFirst() {
        var window = LagWindow(window: .seconds(60))
        for tick in 0..<10 { window.append(Self.sample(Int64(tick), Int64(tick * 10))) }
        #expect(window.recent(3).map(\.lagMillis) == [70, 80, 90])
        #expect(window.recent(50).count == 10)
        #expect(window.recent(0).isEmpty)
    }

    @Test func recentNeverReturnsEvictedSamples() {
        var window = LagWindow(window: .seconds(2))
        for tick in 0..<10 { window.append(Self.sample(Int64(tick), Int64(tick))) }
        #expect(window.recent(40).map(\.lagMillis) == [7, 8, 9])
    }

    // MARK: Sparkline

    @Test func sparklineHasOneBarPerValue() {
        #expect(sparkline([]) == "")
        #expect(sparkline([5]).count == 1)
        #expect(sparkline(Array(repeating: 3, count: 40)).count == 40)
    }

    @Test func sparklineExtremes() {
        #expect(sparkline([0, 100]) == "▁█")
        #expect(sparkline([0, 50, 100]) == "▁▅█")
        #expect(sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█")
    }

    @Test func sparklineScalesToTheLargestValue() {
        #expect(sparkline([1000, 1000]) == "██")
        #expect(sparkline([7, 7]) == "██")
    }

    @Test func sparklineAllZeroIsFlatAtTheBottom() {
        #expect(sparkline([0, 0, 0]) == "▁▁▁")
    }

    @Test func sparklineFloorKeepsSmallValuesLow() {
        // 10 ms of lag on a 1000 ms floor is not a full bar.
        #expect(sparkline([10, 5], floor: 1000) == "▁▁")
        #expect(sparkline([500, 1000], floor: 1000) == "▅█")
        #expect(sparkline([2000], floor: 1000) == "█")
    }

    @Test func sparklineClampsNegativeValues() {
        #expect(sparkline([-5, 7]) == "▁█")
    }

    // MARK: HeartbeatLag

    /// Rows 1…4 written every 250 ms from t0.
    private static let written: [HeartbeatRow] = (0..<4).map {
        HeartbeatRow(sequence: UInt64($0 + 1), writtenAtMicros: t0 + Int64($0) * 250 * milli)
    }
    private static let staleAfter: Int64 = 1 * second

    private static func lag(applied sequence: UInt64, at observedAt: Int64, written: [HeartbeatRow] = Self.written)
        -> Int64
    {
        let applied =
            written.first { $0.sequence == sequence }
            ?? HeartbeatRow(sequence: sequence, writtenAtMicros: t0 - 60 * second)
        return HeartbeatLag.millis(
            applied: applied, observedAtMicros: observedAt, written: written, staleAfterMicros: staleAfter)
    }

    @Test func caughtUpReplicaHasNoLag() {
        // Row 4 (the newest) was written at t0+750 ms; the replica has it.
        #expect(Self.lag(applied: 4, at: Self.t0 + 900 * Self.milli) == 0)
    }

    @Test func behindReplicaIsAsStaleAsTheFirstRowItLacks() {
        // Applied row 2; row 3 was written at t0+500 ms and not applied: lag = 900 − 500.
        #expect(Self.lag(applied: 2, at: Self.t0 + 900 * Self.milli) == 400)
        #expect(Self.lag(applied: 1, at: Self.t0 + 900 * Self.milli) == 650)
        #expect(Self.lag(applied: 3, at: Self.t0 + 900 * Self.milli) == 150)
    }

    @Test func rowsWrittenAfterTheObservationDoNotCount() {
        // Observed at t0+600 ms: row 4 (t0+750 ms) did not exist yet, so row 3 was the newest.
        #expect(Self.lag(applied: 3, at: Self.t0 + 600 * Self.milli) == 0)
        #expect(Self.lag(applied: 2, at: Self.t0 + 600 * Self.milli) == 100)
    }

    @Test func stoppedWriterFallsBackToTheAppliedRowsAge() {
        // Newest row at t0+750 ms; 5 s later the writer counts as stopped (stale after 1 s).
        let observedAt = Self.t0 + 5_750 * Self.milli
        #expect(Self.lag(applied: 4, at: observedAt) == 5_000)
        #expect(Self.lag(applied: 2, at: observedAt) == 5_500)
    }

    @Test func writerExactlyAtTheStaleLimitIsStillLive() {
        let observedAt = Self.t0 + 750 * Self.milli + Self.staleAfter
        #expect(Self.lag(applied: 4, at: observedAt) == 0)
    }

    @Test func appliedRowOlderThanTheKeptHistoryFallsBack() {
        // The controller kept rows 10…13 only; the replica is stuck at row 5, written 60 s before t0.
        let kept = (0..<4).map {
            HeartbeatRow(sequence: UInt64($0 + 10), writtenAtMicros: Self.t0 + Int64($0) * 250 * Self.milli)
        }
        let applied = HeartbeatRow(sequence: 5, writtenAtMicros: Self.t0 - 60 * Self.second)
        let observedAt = Self.t0 + 900 * Self.milli
        let millis = HeartbeatLag.millis(
            applied: applied, observedAtMicros: observedAt, written: kept, staleAfterMicros: Self.staleAfter)
        #expect(millis == 60_900)
    }

    @Test func noRowsWrittenFallsBack() {
        let applied = HeartbeatRow(sequence: 9, writtenAtMicros: Self.t0)
        let millis = HeartbeatLag.millis(
            applied: applied, observedAtMicros: Self.t0 + 2 * Self.second, written: [HeartbeatRow](),
            staleAfterMicros: Self.staleAfter)
        #expect(millis == 2_000)
    }

    @Test func longHistoryAgreesWithAScanOfEveryRow() {
        // 8,192 rows, 250 ms apart, sequences with gaps (a restarted writer skips numbers).
        let rows = (0..<8192).map {
            HeartbeatRow(sequence: UInt64($0 * 3 + 7), writtenAtMicros: Self.t0 + Int64($0) * 250 * Self.milli)
        }
        let newest = rows.last!.writtenAtMicros
        for appliedSequence: UInt64 in [7, 8, 9, 10, 3_000, 3_001, 12_345, 24_580, 24_582, 30_000] {
            let applied = HeartbeatRow(sequence: appliedSequence, writtenAtMicros: Self.t0)
            for observedAt in [newest, newest - 3 * 250 * Self.milli, newest + 100 * Self.milli] {
                let expected =
                    rows.first { $0.sequence > appliedSequence && $0.writtenAtMicros <= observedAt }
                    .map { max(0, observedAt - $0.writtenAtMicros) / 1000 } ?? 0
                let millis = HeartbeatLag.millis(
                    applied: applied, observedAtMicros: observedAt, written: rows, staleAfterMicros: Self.staleAfter)
                #expect(millis == expected, "applied \(appliedSequence), observed at \(observedAt)")
            }
        }
    }

    @Test func lagIsNeverNegative() {
        // A row stamped after the observation (clock skew between probe start and write) gives 0, not < 0.
        let applied = HeartbeatRow(sequence: 1, writtenAtMicros: Self.t0 + Self.second)
        let millis = HeartbeatLag.millis(
            applied: applied, observedAtMicros: Self.t0, written: [HeartbeatRow](), staleAfterMicros: Self.staleAfter)
        #expect(millis == 0)
    }
}
