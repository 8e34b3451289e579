import Synchronization
public import Topology

/// A scripted `InstanceProbe` for monitor tests: answers with a state, fails, or hangs until its
/// deadline like a stopped server behind the real probe.
public final class FakeInstanceProbe: InstanceProbe {
    public enum Behavior: Sendable {
        case answer(InstanceState)
        case fail(String)
        /// Never answers: the probe returns a timeout error when its deadline passes.
        case hang
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public let server: ServerIdentity
    private let state: Mutex<(behavior: Behavior, probes: Int)>

    public init(server: ServerIdentity, behavior: Behavior) {
        self.server = server
        self.state = Mutex((behavior, 0))
    }

    /// Probes started so far.
    public var probeCount: Int { state.withLock { $0.probes } }

    public func setBehavior(_ behavior: Behavior) { state.withLock { $0.behavior = behavior } }

    public func probe(deadline: Duration) async throws -> InstanceState {
        let behavior = state.withLock { state -> Behavior in
            state.probes += 1
            return state.behavior
        }
        switch behavior {
        case .answer(let instance):
            return instance
        case .fail(let message):
            throw Failure(description: message)
        case .hang:
            try await Task.sleep(for: deadline)
            throw Failure(description: "\(server.address): probe did not finish within \(deadline)")
        }
    }

    public func close() async {}
}
