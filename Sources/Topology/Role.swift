/// The role the controller derives for a server from what it observed.
public enum Role: String, Hashable, Sendable, Codable, CaseIterable {
    /// Accepts writes; the servers of the cluster replicate from it.
    case primary
    /// Replicates from another server.
    case replica
    /// The last probe failed (refused, timed out, wrong credentials…).
    case unreachable
    /// Reachable, not the primary and not replicating from anyone.
    case standalone
}
