/// Heartbeat lag from the rows the controller wrote and the newest row a replica has applied.
///
/// The replica is as stale as the oldest heartbeat it has *not* applied: lag = now − written time of the
/// first row after the applied one (0 when it has applied the newest row written before `now`). This
/// removes the heartbeat interval's sawtooth from the number. When the writer has stopped (primary
/// down, no recent row), or the applied row is older than the history kept, lag falls back to
/// now − written time of the applied row, which keeps growing: a stopped heartbeat shows as lag.
public enum HeartbeatLag {
    /// - Parameters:
    ///   - applied: the heartbeat row read on the replica.
    ///   - observedAtMicros: controller wall clock when the replica was read.
    ///   - written: rows the controller wrote, in increasing sequence order (oldest first).
    ///   - staleAfterMicros: the writer counts as stopped when its newest row is older than this.
    ///
    /// Finds the first row after the applied one by binary search: the history holds thousands of rows
    /// and this runs for every replica at every probe and status read.
    public static func millis(
        applied: HeartbeatRow, observedAtMicros: Int64, written: [HeartbeatRow], staleAfterMicros: Int64
    ) -> Int64 {
        let fallback = max(0, observedAtMicros - applied.writtenAtMicros) / 1000
        guard let newest = written.last, observedAtMicros - newest.writtenAtMicros <= staleAfterMicros,
            let oldest = written.first, oldest.sequence <= applied.sequence
        else { return fallback }
        // Rows before `low` have sequence <= applied; rows from `low` on are the ones the replica lacks.
        var low = 0
        var high = written.count
        while low < high {
            let middle = low + (high - low) / 2
            if written[middle].sequence <= applied.sequence { low = middle + 1 } else { high = middle }
        }
        guard let next = written[low...].first(where: { $0.writtenAtMicros <= observedAtMicros }) else { return 0 }
        return max(0, observedAtMicros - next.writtenAtMicros) / 1000
    }
}
