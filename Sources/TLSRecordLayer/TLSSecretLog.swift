import NIOConcurrencyHelpers
public import NIOCore

/// The session secrets BoringSSL reports at the end of each handshake (through NIOSSL's key-log
/// callback), held in memory only until the fast path takes them over for that connection.
///
/// Nothing here is ever written out or logged. Entries are keyed by the handshake's client random; a
/// connection's entry is taken when its fast path starts, or dropped when the connection ends, and
/// entries nobody claims (a connection that failed between handshake and login) expire.
public final class TLSSecretLog: Sendable {
    struct Secrets {
        /// TLS 1.2's master secret.
        var master: [UInt8]?
        /// TLS 1.3's first application traffic secrets.
        var clientTraffic: [UInt8]?
        var serverTraffic: [UInt8]?
        var added: NIODeadline
    }

    private struct State {
        var entries: [[UInt8]: Secrets] = [:]
        var prunedAt = NIODeadline.uptimeNanoseconds(0)
    }

    private let state = NIOLockedValueBox(State())
    /// A safety net: connections drop their own entries, but entries older than this are dropped when
    /// the log is large (at most once a second, so a flood of handshakes costs no quadratic work).
    private let expiry: TimeAmount = .seconds(60)
    private let pruneThreshold = 1024

    public init() {}

    /// The callback to set as `TLSConfiguration.keyLogCallback`.
    public var keyLogCallback: @Sendable (ByteBuffer) -> Void {
        { [self] line in record(line) }
    }

    /// Parses one NSS key-log line ("LABEL <client random hex> <secret hex>\n").
    func record(_ line: ByteBuffer) {
        let fields = line.readableBytesView.split(separator: UInt8(ascii: " "))
        guard fields.count == 3, let random = Self.hex(fields[1]),
            let secret = Self.hex(fields[2].prefix { $0 != UInt8(ascii: "\n") })
        else { return }
        let label = String(decoding: fields[0], as: UTF8.self)
        guard ["CLIENT_RANDOM", "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0"].contains(label) else { return }
        let now = NIODeadline.now()
        state.withLockedValue { state in
            if state.entries.count >= pruneThreshold, now - state.prunedAt >= .seconds(1) {
                state.prunedAt = now
                state.entries = state.entries.filter { now - $0.value.added < expiry }
            }
            var secrets = state.entries[random] ?? Secrets(added: now)
            switch label {
            case "CLIENT_RANDOM": secrets.master = secret
            case "CLIENT_TRAFFIC_SECRET_0": secrets.clientTraffic = secret
            default: secrets.serverTraffic = secret
            }
            state.entries[random] = secrets
        }
    }

    /// Removes and returns the secrets of the handshake with this client random.
    func take(clientRandom: [UInt8]) -> Secrets? {
        state.withLockedValue { $0.entries.removeValue(forKey: clientRandom) }
    }

    /// Drops a connection's secrets (it ended, or switched).
    func discard(clientRandom: [UInt8]) {
        _ = take(clientRandom: clientRandom)
    }

    var count: Int { state.withLockedValue { $0.entries.count } }

    private static func hex(_ text: some Collection<UInt8>) -> [UInt8]? {
        guard text.count % 2 == 0, !text.isEmpty else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.count / 2)
        var high: UInt8?
        for character in text {
            let value: UInt8
            switch character {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = character - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): value = character - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): value = character - UInt8(ascii: "A") + 10
            default: return nil
            }
            if let pending = high {
                bytes.append(pending << 4 | value)
                high = nil
            } else {
                high = value
            }
        }
        return bytes
    }
}
