import NIOConcurrencyHelpers
public import NIOCore
public import Topology

/// State shared by every session: where the primary is, the live sessions (for KILL and for limits)
/// and the version string to greet clients with. Read on every login, written when the topology moves.
public final class ProxyState: Sendable {
    private struct Shared {
        var primary: ServerIdentity?
        var serverVersion = "5.5.5-10.11.0-MariaDB"
        var sessions: [UInt32: SessionHandle] = [:]
        var nextConnectionID: UInt32 = 1
        var failedLogins: [String: [ContinuousClock.Instant]] = [:]
    }

    /// What other sessions may learn of a session: enough to KILL its backend thread.
    public struct SessionHandle: Sendable {
        public var user: String
        public var eventLoop: any EventLoop
        public var backend: ServerIdentity?
        public var backendThreadID: UInt32?
        /// A KILL through the proxy named this session: when its server connection goes, the session ends
        /// with it instead of moving to a new connection.
        public var killRequested = false
        /// Ends the session: shuts its client connection down at once (its socket, whoever reads it, the fast
        /// relay included) and closes it; the future completes when that is done.
        public var shutDown: @Sendable () -> EventLoopFuture<Void>
    }

    private let shared = NIOLockedValueBox(Shared())

    public init() {}

    public var primary: ServerIdentity? { shared.withLockedValue { $0.primary } }

    public func setPrimary(_ server: ServerIdentity?) {
        shared.withLockedValue { $0.primary = server }
    }

    public var serverVersion: String { shared.withLockedValue { $0.serverVersion } }

    /// Greet clients with what the databases say about themselves (MariaDB's `5.5.5-` prefix included).
    public func noteServerVersion(_ version: String) {
        shared.withLockedValue { $0.serverVersion = version }
    }

    public var sessionCount: Int { shared.withLockedValue { $0.sessions.count } }

    /// Registers a new session, or nil when `limit` sessions are open already. Ids are never 0 and never
    /// one that a live session holds.
    public func register(limit: Int, _ make: (UInt32) -> SessionHandle) -> UInt32? {
        shared.withLockedValue { state in
            guard state.sessions.count < limit else { return nil }
            var id = state.nextConnectionID
            while id == 0 || state.sessions[id] != nil { id &+= 1 }
            state.nextConnectionID = id &+ 1
            state.sessions[id] = make(id)
            return id
        }
    }

    public func update(_ id: UInt32, _ change: (inout SessionHandle) -> Void) {
        shared.withLockedValue { state in
            if var handle = state.sessions[id] {
                change(&handle)
                state.sessions[id] = handle
            }
        }
    }

    public func unregister(_ id: UInt32) {
        _ = shared.withLockedValue { $0.sessions.removeValue(forKey: id) }
    }

    public func session(_ id: UInt32) -> SessionHandle? {
        shared.withLockedValue { $0.sessions[id] }
    }

    /// The proxy sessions connected to `server`, by their server thread ids.
    public func sessionIDsByBackendThread(on server: ServerIdentity) -> [UInt64: UInt32] {
        shared.withLockedValue { state in
            var ids: [UInt64: UInt32] = [:]
            for (id, handle) in state.sessions where handle.backend == server {
                if let thread = handle.backendThreadID { ids[UInt64(thread)] = id }
            }
            return ids
        }
    }

    public func allSessions() -> [SessionHandle] {
        shared.withLockedValue { Array($0.sessions.values) }
    }

    // MARK: failed-login throttling

    /// Whether `key` (user and client address) has `max` failures within `window`; 0 never throttles.
    public func isThrottled(_ key: String, max: Int, window: Duration, now: ContinuousClock.Instant) -> Bool {
        guard max > 0 else { return false }
        return shared.withLockedValue { state in
            let recent = (state.failedLogins[key] ?? []).filter { now - $0 < window }
            state.failedLogins[key] = recent.isEmpty ? nil : recent
            return recent.count >= max
        }
    }

    public func recordFailedLogin(_ key: String, max: Int, now: ContinuousClock.Instant) {
        guard max > 0 else { return }
        shared.withLockedValue { state in
            var recent = state.failedLogins[key] ?? []
            recent.append(now)
            state.failedLogins[key] = Array(recent.suffix(max))
        }
    }

    public func clearFailedLogins(_ key: String) {
        _ = shared.withLockedValue { $0.failedLogins.removeValue(forKey: key) }
    }
}
