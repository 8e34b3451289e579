import Dispatch
import Logging
import Metrics
package import MySQLWire
import NIOConcurrencyHelpers
import NIOCore
package import SQLProxy
package import TLSRecordLayer
package import Topology

#if canImport(Glibc)
    import Glibc
#endif

/// Feeds a script of client and server bytes to a session the fast relay carries, on real sockets (two
/// socket pairs, the driver at the far ends), for the fuzzer and the tests. The relay must survive any
/// bytes, and give the session back exactly once: when it meets something it leaves to `ClientSession`,
/// or when asked at the end of the script.
package enum RelayDriver {
    /// What the first byte of an input chooses.
    package struct Options: Sendable {
        /// TLS 1.3 (AES-128-GCM) records on the client hop, sealed by the driver.
        package var clientTLS = false
        /// TLS 1.2 (ECDHE-RSA-AES128-GCM, explicit nonces) records on the server hop.
        package var backendTLS = false
        package var deprecateEOF = true

        package init(clientTLS: Bool = false, backendTLS: Bool = false, deprecateEOF: Bool = true) {
            self.clientTLS = clientTLS
            self.backendTLS = backendTLS
            self.deprecateEOF = deprecateEOF
        }
    }

    /// A step of the script; on a TLS hop a step's bytes are sealed into one record unless `raw`.
    package typealias Step = (step: SessionDriver.Step, raw: Bool)

    /// Input layout: an options byte (bit 0 client TLS, bit 1 server TLS, bit 2 DEPRECATE_EOF), then steps,
    /// each a header byte (bit 7 the server's, bit 6 raw, bits 0–5 the length: 0 closes the side) and that
    /// many bytes.
    package static func script(fromFuzzInput input: [UInt8]) -> (Options, [Step]) {
        let flags = input.first ?? 0
        let options = Options(clientTLS: flags & 1 != 0, backendTLS: flags & 2 != 0, deprecateEOF: flags & 4 != 0)
        var steps: [Step] = []
        var index = 1
        while index < input.count {
            let header = input[index]
            let side: SessionDriver.Side = header & 0x80 != 0 ? .server : .client
            let length = Int(header & 0x3F)
            let end = min(input.count, index + 1 + length)
            let step: SessionDriver.Step = length == 0 ? .close(side) : .send(side, Array(input[(index + 1)..<end]))
            steps.append((step, header & 0x40 != 0))
            index = end
        }
        return (options, steps)
    }

    /// One relay thread for every script, as in the proxy (threads outlive sessions).
    private static let relay = FastRelay(
        threads: 1, busyPoll: ProxySettings().relayBusyPoll, logger: Logger(label: "relay-driver"))
    private static let server = ServerIdentity(name: "s1", host: "127.0.0.1", port: 3306)
    private static let state: ProxyState = {
        let state = ProxyState()
        state.setPrimary(server)
        return state
    }()
    private static let metrics = ProxyMetrics(factory: NOOPMetricsHandler.instance)

    private static let clientSuite = TLSCipherSuite.tls13(0x1301)!
    private static let backendSuite = TLSCipherSuite.tls12(0xC02F)!
    private static let clientKeys = (
        fromClient: TLSKeySchedule.tls13Keys(secret: Array(repeating: 1, count: 32), suite: clientSuite),
        toClient: TLSKeySchedule.tls13Keys(secret: Array(repeating: 2, count: 32), suite: clientSuite)
    )
    private static let backendKeys = TLSKeySchedule.tls12Keys(
        masterSecret: Array(repeating: 3, count: 48), clientRandom: Array(repeating: 4, count: 32),
        serverRandom: Array(repeating: 5, count: 32), suite: backendSuite)

    /// Both directions of one hop: the relay's side and the driver's.
    private struct HopKeys {
        var relay: TLSRecordHandler.Suspended
        var driverWriter: TLSRecordProtection
    }

    /// A hop's record protection: `toRelay` keys what the relay reads, `fromRelay` what it writes.
    private static func hop(
        _ version: TLSRecordVersion, _ suite: TLSCipherSuite, toRelay: TLSTrafficKeys, fromRelay: TLSTrafficKeys,
        sequence: UInt64
    ) throws(TLSRecordError) -> HopKeys {
        func protection(_ keys: TLSTrafficKeys, sealing: Bool) throws(TLSRecordError) -> TLSRecordProtection {
            try TLSRecordProtection(version: version, suite: suite, keys: keys, sequence: sequence, sealing: sealing)
        }
        return HopKeys(
            relay: .init(
                reader: try protection(toRelay, sealing: false), writer: try protection(fromRelay, sealing: true),
                partial: ByteBuffer()),
            driverWriter: try protection(toRelay, sealing: true))
    }

    private static func clientHop() throws(TLSRecordError) -> HopKeys {
        try hop(.tls13, clientSuite, toRelay: clientKeys.fromClient, fromRelay: clientKeys.toClient, sequence: 0)
    }

    /// The relay is the server hop's TLS client.
    private static func backendHop() throws(TLSRecordError) -> HopKeys {
        try hop(.tls12, backendSuite, toRelay: backendKeys.server, fromRelay: backendKeys.client, sequence: 1)
    }

    /// A session for the fast relay on two socket pairs (the relay's ends non-blocking), and the far ends,
    /// `client` and `server`, for whoever plays the peers; nil when the sockets cannot be made.
    package static func sessionOnSocketPairs(
        clientRecords: TLSRecordHandler.Suspended?, backendRecords: TLSRecordHandler.Suspended?,
        capabilities: CapabilityFlags, state: ProxyState, server: ServerIdentity, largestPacket: Int,
        returned: @escaping @Sendable (RelayedSession) -> Void
    ) -> (session: RelayedSession, client: Int32, server: Int32)? {
        var clientPair: [Int32] = [0, 0]
        var backendPair: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &clientPair) == 0 else { return nil }
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &backendPair) == 0 else {
            for fd in clientPair { close(fd) }
            return nil
        }
        for fd in [clientPair[0], backendPair[0]] { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        let session = RelayedSession(
            client: .init(descriptor: clientPair[0], records: clientRecords),
            backend: .init(descriptor: backendPair[0], records: backendRecords), relay: CommandRelay(),
            connectionID: 7, capabilities: capabilities, server: server, state: state, metrics: metrics,
            largestPacket: largestPacket, returned: returned)
        return (session, clientPair[1], backendPair[1])
    }

    /// What came of a script.
    package struct Outcome: Sendable {
        /// Why the relay gave the session back (asked to at the end, or something it leaves to the session).
        package var reason: String
        /// Bytes that reached the client's and the server's ends (records on a TLS hop).
        package var toClient: Int
        package var toServer: Int
    }

    /// Runs `steps` through a relayed session; traps when the relay does not give the session back within
    /// 10 s of being asked, gives it back twice, or still holds it 2 s after.
    @discardableResult
    package static func run(_ options: Options, _ steps: [Step]) throws -> Outcome {
        var client = options.clientTLS ? try clientHop() : nil
        var backend = options.backendTLS ? try backendHop() : nil
        let returns = NIOLockedValueBox(0)
        let returned = DispatchSemaphore(value: 0)
        var capabilities: CapabilityFlags = [.protocol41, .secureConnection, .pluginAuth, .transactions]
        if options.deprecateEOF { capabilities.insert(.deprecateEOF) }
        // (Not `guard let made = …`: that binding would hold the session to the end of the function, and the
        // check below that the relay lets go of it would fail in debug builds.)
        var session: RelayedSession?
        let (clientEnd, serverEnd): (Int32, Int32)
        if let made = sessionOnSocketPairs(
            clientRecords: client?.relay, backendRecords: backend?.relay, capabilities: capabilities, state: state,
            server: server, largestPacket: 1 << 16,
            returned: { _ in
                let count = returns.withLockedValue { count in
                    count += 1
                    return count
                }
                precondition(count == 1, "the fast relay gave a session back twice")
                returned.signal()
            })
        {
            (session, clientEnd, serverEnd) = (made.session, made.client, made.server)
        } else {
            return Outcome(reason: "socketpair failed", toClient: 0, toServer: 0)
        }
        let (relayClientEnd, relayServerEnd) = (session!.client.descriptor, session!.backend.descriptor)
        defer { for fd in [clientEnd, serverEnd, relayClientEnd, relayServerEnd] { close(fd) } }
        for fd in [clientEnd, serverEnd] { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        relay.adopt(session!)

        var sink = [UInt8](repeating: 0, count: 1 << 16)
        var outcome = Outcome(reason: "", toClient: 0, toServer: 0)
        func drain() {
            for fd in [clientEnd, serverEnd] {
                while case let got = sink.withUnsafeMutableBytes({ read(fd, $0.baseAddress, $0.count) }), got > 0 {
                    if fd == clientEnd { outcome.toClient += got } else { outcome.toServer += got }
                }
            }
        }
        /// Each step is read by the relay before the next is written (unless it has stopped reading that
        /// socket, or given the session back), so that scripts play the same way every time.
        func waitUntilRead(_ relayEnd: Int32) {
            let deadline = ContinuousClock.now + .milliseconds(200)
            var unread: Int32 = 0
            while returns.withLockedValue({ $0 }) == 0, ioctl(relayEnd, UInt(FIONREAD), &unread) == 0, unread > 0,
                ContinuousClock.now < deadline
            {
                sched_yield()
            }
        }
        for (step, raw) in steps {
            let (side, plain): (SessionDriver.Side, [UInt8])
            switch step {
            case .send(let to, let bytes): (side, plain) = (to, bytes)
            case .close(let which):
                shutdown(which == .server ? serverEnd : clientEnd, Int32(SHUT_WR))
                continue
            }
            var bytes = ByteBuffer()
            if side == .server, !raw, backend != nil {
                try backend!.driverWriter.seal(type: TLSContentType.applicationData, plain, into: &bytes)
            } else if side == .client, !raw, client != nil {
                try client!.driverWriter.seal(type: TLSContentType.applicationData, plain, into: &bytes)
            } else {
                bytes.writeBytes(plain)
            }
            // A full socket drops the rest (the relay is not reading that side now); so does a closed one.
            _ = bytes.withUnsafeReadableBytes {
                send(side == .server ? serverEnd : clientEnd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            waitUntilRead(side == .server ? relayServerEnd : relayClientEnd)
            drain()
        }
        relay.reclaim(session!)
        precondition(returned.wait(timeout: .now() + 10) == .success, "the fast relay did not give a session back")
        drain()
        outcome.reason = session!.reason
        // The relay lets go of a session it gave back once the events it was handling are done.
        weak let released = session
        session = nil
        let deadline = ContinuousClock.now + .seconds(2)
        while released != nil {
            precondition(ContinuousClock.now < deadline, "the fast relay kept a session it gave back")
            sched_yield()
        }
        return outcome
    }
}
