import Dispatch

/// Runs blocking work (process spawning, waiting on sockets) on a thread of its own. Not on
/// `DispatchQueue.global()`: on Linux Swift's concurrency runs its tasks on those same worker threads, one
/// per core, so two long blocking calls there stalled every task of the test process (a monitor test's
/// 80 ms sleeps took over 10 s). A queue of its own is serial, and libdispatch gives a serial queue a
/// thread even when the shared workers are all busy.
@discardableResult
public func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue(label: "switchyard.test.off-pool").async { continuation.resume(with: Result { try body() }) }
    }
}
