import Testing
import Topology

@Suite("Duration in whole units")
struct DurationWholeUnitsTests {
    @Test("fractions are cut toward zero in each unit")
    func truncation() {
        let duration = Duration.seconds(2) + .nanoseconds(1_999_999)
        #expect(duration.wholeMilliseconds == 2_001)
        #expect(duration.wholeMicroseconds == 2_001_999)
        #expect(duration.wholeNanoseconds == 2_001_999_999)
        #expect(Duration.microseconds(-1_500).wholeMilliseconds == -1)
        #expect(Duration.zero.wholeNanoseconds == 0)
    }

    @Test("durations beyond Int64 clamp instead of trapping")
    func clamping() {
        let huge = Duration.seconds(Int64.max / 1_000)
        #expect(huge.wholeMilliseconds == Int64.max / 1_000 * 1_000)
        #expect(huge.wholeMicroseconds == .max)
        #expect(huge.wholeNanoseconds == .max)
        #expect((Duration.zero - huge).wholeNanoseconds == .min)
        #expect(Duration.seconds(Int64.max).wholeMilliseconds == .max)
    }
}
