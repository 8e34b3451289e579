/// Runs `body` every `interval`, measured start to start, until the task is cancelled. A body that
/// overruns its slot starts the next one at once rather than queueing missed ones.
func repeatEvery(_ interval: Duration, _ body: () async -> Void) async {
    let clock = ContinuousClock()
    var next = clock.now
    while !Task.isCancelled {
        await body()
        next = next.advanced(by: interval)
        if next < clock.now { next = clock.now }
        do { try await Task.sleep(until: next, clock: clock) } catch { return }
    }
}
