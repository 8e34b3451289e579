/// One type per protocol packet, each with `decode` (from a payload, with the negotiated capabilities)
/// and `encode`.
public enum Packets {}
