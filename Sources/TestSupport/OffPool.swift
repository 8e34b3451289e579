import Dispatch

/// Runs blocking work (process spawning, waiting on sockets) on a dispatch thread, never on Swift's
/// cooperative pool, so the tests running beside it are not starved (the pool has one thread per core).
@discardableResult
public func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
    }
}
