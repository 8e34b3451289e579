/// A rolling window of lag samples for one replica, with percentile statistics.
public struct LagWindow: Sendable {
    public struct Sample: Hashable, Sendable {
        public var atMicros: Int64
        public var lagMillis: Int64
        public init(atMicros: Int64, lagMillis: Int64) {
            self.atMicros = atMicros
            self.lagMillis = lagMillis
        }
    }

    public struct Statistics: Hashable, Sendable {
        public var count: Int
        public var p50Millis: Int64
        public var p99Millis: Int64
        public var maxMillis: Int64
    }

    public let windowMicros: Int64
    private var samples: [Sample] = []
    private var head = 0

    public init(window: Duration) {
        self.windowMicros = window.wholeMicroseconds
    }

    /// Adds a sample and drops those older than the window (relative to this sample's time).
    public mutating func append(_ sample: Sample) {
        samples.append(sample)
        let cutoff = sample.atMicros - windowMicros
        while head < samples.count, samples[head].atMicros < cutoff { head += 1 }
        if head > 1024, head * 2 > samples.count {
            samples.removeFirst(head)
            head = 0
        }
    }

    public var current: [Sample] { Array(samples[head...]) }

    /// The newest `count` samples, oldest first.
    public func recent(_ count: Int) -> [Sample] { Array(samples[max(head, samples.count - count)...]) }

    /// Nearest-rank percentiles over the window; nil when empty.
    public var statistics: Statistics? {
        let values = samples[head...].map(\.lagMillis).sorted()
        guard let maximum = values.last else { return nil }
        func rank(_ p: Double) -> Int64 {
            let index = Int((p * Double(values.count)).rounded(.up)) - 1
            return values[min(max(index, 0), values.count - 1)]
        }
        return Statistics(count: values.count, p50Millis: rank(0.50), p99Millis: rank(0.99), maxMillis: maximum)
    }
}

/// Renders values as a unicode sparkline scaled to the largest value (or `floor`, whichever is larger).
public func sparkline(_ values: [Int64], floor: Int64 = 1) -> String {
    let bars: [Character] = ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"]
    let top = max(values.max() ?? 0, floor, 1)
    return String(
        values.map { value in
            let clamped = max(value, 0)
            let index = Int((Double(clamped) / Double(top) * Double(bars.count - 1)).rounded())
            return bars[min(index, bars.count - 1)]
        })
}
