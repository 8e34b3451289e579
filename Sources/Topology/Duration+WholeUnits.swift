extension Duration {
    /// Whole milliseconds, rounded toward zero, clamped to `Int64`'s range.
    public var wholeMilliseconds: Int64 { whole(unitsPerSecond: 1_000) }

    /// Whole microseconds, rounded toward zero, clamped to `Int64`'s range: the unit of the topology's clocks.
    public var wholeMicroseconds: Int64 { whole(unitsPerSecond: 1_000_000) }

    /// Whole nanoseconds, rounded toward zero, clamped to `Int64`'s range.
    public var wholeNanoseconds: Int64 { whole(unitsPerSecond: 1_000_000_000) }

    private func whole(unitsPerSecond: Int64) -> Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: unitsPerSecond)
        let attosecondsPerUnit = 1_000_000_000_000_000_000 / unitsPerSecond
        let (sum, sumOverflow) = scaled.addingReportingOverflow(attoseconds / attosecondsPerUnit)
        if overflow || sumOverflow { return seconds < 0 ? .min : .max }
        return sum
    }
}
