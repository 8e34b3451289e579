public import NIOCore

/// Watches a connection's raw TLS records while NIOSSL handshakes, so the fast path can take over
/// afterwards: the hello messages (client random, server random, version, cipher suite), how many
/// protected records went each way and the last of them, and any incomplete record still in flight.
///
/// Sits between the socket and NIOSSL's handler and only reads: every byte passes on unchanged. It is
/// removed when the fast path starts (or is given up), so its copying is limited to the login.
public final class TLSHandshakeObserver: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    /// This end's part in the handshake.
    public enum Role: Sendable {
        case server
        case client
    }

    struct Direction {
        /// The bytes of the record still incomplete.
        var partial = ByteBuffer()
        /// Plaintext handshake bytes not yet parsed into messages.
        var handshake: [UInt8] = []
        /// TLS 1.2: a ChangeCipherSpec went this way, so every later record is protected.
        var changedCipherSpec = false
        var protectedRecords = 0
        var lastProtected: (type: UInt8, body: [UInt8])?
    }

    /// TLS 1.3's HelloRetryRequest is a ServerHello with this random (RFC 8446 §4.1.3).
    static let helloRetryRandom: [UInt8] = [
        0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
        0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
    ]
    static let maxHandshakeBytes = 1 << 18

    let role: Role
    /// Where this connection's secrets are logged; they are dropped when the observer leaves.
    private let secrets: TLSSecretLog
    var inbound = Direction()
    var outbound = Direction()
    var clientRandom: [UInt8]?
    var serverRandom: [UInt8]?
    var version: TLSRecordVersion?
    var suiteID: UInt16?
    /// Set when the stream is something the fast path cannot follow; the session then stays on NIOSSL.
    var failure: String?
    /// TLS 1.3 HelloRetryRequests seen (the client then sends a second ClientHello).
    var helloRetryRequests = 0

    public init(role: Role, secrets: TLSSecretLog) {
        self.role = role
        self.secrets = secrets
    }

    /// The connection ended or switched: its secrets, if still logged, are not needed any more.
    public func handlerRemoved(context: ChannelHandlerContext) {
        if let clientRandom { secrets.discard(clientRandom: clientRandom) }
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        observe(unwrapInboundIn(data), inbound: true)
        context.fireChannelRead(data)
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        observe(unwrapOutboundIn(data), inbound: false)
        context.write(data, promise: promise)
    }

    func observe(_ bytes: ByteBuffer, inbound isInbound: Bool) {
        guard failure == nil else { return }
        if isInbound {
            observe(bytes, direction: &inbound, fromClient: role == .server)
        } else {
            observe(bytes, direction: &outbound, fromClient: role == .client)
        }
    }

    private func observe(_ bytes: ByteBuffer, direction: inout Direction, fromClient: Bool) {
        direction.partial.writeImmutableBuffer(bytes)
        while failure == nil, let header = direction.partial.getBytes(at: direction.partial.readerIndex, length: 5) {
            let length = Int(header[3]) << 8 | Int(header[4])
            guard direction.partial.readableBytes >= 5 + length else { break }
            direction.partial.moveReaderIndex(forwardBy: 5)
            let body = direction.partial.readBytes(length: length)!
            record(type: header[0], body: body, direction: &direction, fromClient: fromClient)
        }
        direction.partial.discardReadBytes()
    }

    private func record(type: UInt8, body: [UInt8], direction: inout Direction, fromClient: Bool) {
        if direction.changedCipherSpec || (type == TLSContentType.applicationData) {
            guard let version else {
                failure = "a protected record before the ServerHello"
                return
            }
            if version == .tls12 && !direction.changedCipherSpec {
                failure = "application data before ChangeCipherSpec"
                return
            }
            direction.protectedRecords += 1
            direction.lastProtected = (type, body)
            return
        }
        switch type {
        case TLSContentType.changeCipherSpec:
            // TLS 1.3 sends one only for middlebox compatibility; it changes nothing.
            if version == .tls12 { direction.changedCipherSpec = true }
        case TLSContentType.handshake:
            direction.handshake += body
            parseHandshake(&direction, fromClient: fromClient)
        case TLSContentType.alert:
            break  // a plaintext alert ends the handshake; NIOSSL reports it
        default:
            failure = "a record of unknown type \(type)"
        }
    }

    private func parseHandshake(_ direction: inout Direction, fromClient: Bool) {
        guard direction.handshake.count <= Self.maxHandshakeBytes else {
            failure = "handshake messages larger than \(Self.maxHandshakeBytes) bytes"
            return
        }
        var offset = 0
        let bytes = direction.handshake
        while bytes.count - offset >= 4 {
            let length = Int(bytes[offset + 1]) << 16 | Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
            guard bytes.count - offset - 4 >= length else { break }
            let body = bytes[(offset + 4)..<(offset + 4 + length)]
            switch bytes[offset] {
            case 1 where fromClient:
                guard body.count >= 34 else {
                    failure = "a short ClientHello"
                    return
                }
                clientRandom = Array(body.dropFirst(2).prefix(32))
            case 2 where !fromClient:
                serverHello(Array(body))
            default:
                break
            }
            offset += 4 + length
        }
        direction.handshake.removeFirst(offset)
    }

    private func serverHello(_ body: [UInt8]) {
        guard body.count >= 38 else {
            failure = "a short ServerHello"
            return
        }
        let random = Array(body[2..<34])
        guard random != Self.helloRetryRandom else {
            helloRetryRequests += 1
            return  // the real ServerHello follows
        }
        var index = 35 + Int(body[34])
        guard body.count >= index + 3 else {
            failure = "a short ServerHello"
            return
        }
        serverRandom = random
        suiteID = UInt16(body[index]) << 8 | UInt16(body[index + 1])
        index += 3  // cipher suite, compression method
        version = .tls12
        guard body.count >= index + 2 else { return }
        let end = min(body.count, index + 2 + (Int(body[index]) << 8 | Int(body[index + 1])))
        index += 2
        while end - index >= 4 {
            let type = Int(body[index]) << 8 | Int(body[index + 1])
            let length = Int(body[index + 2]) << 8 | Int(body[index + 3])
            index += 4
            // supported_versions: TLS 1.3 negotiated.
            if type == 43, length == 2, index + 2 <= end, body[index] == 3, body[index + 1] == 4 {
                version = .tls13
            }
            index += length
        }
    }

    /// What the fast path needs to carry on where NIOSSL stops.
    struct Plan {
        var reader: TLSRecordProtection
        var writer: TLSRecordProtection
        /// The start of an inbound record NIOSSL has not finished reading.
        var leftover: ByteBuffer
    }

    /// Derives both directions' keys and next sequence numbers, proving them on the last protected record
    /// each way (AEAD authentication fails on any wrong key or number).
    func plan() throws(TLSFastPathUnavailable) -> Plan {
        if let failure { throw TLSFastPathUnavailable(failure) }
        guard let version, let suiteID, let clientRandom else {
            throw TLSFastPathUnavailable("the handshake was not seen")
        }
        guard let suite = version == .tls12 ? TLSCipherSuite.tls12(suiteID) : TLSCipherSuite.tls13(suiteID) else {
            throw TLSFastPathUnavailable("cipher suite 0x\(String(suiteID, radix: 16)) is not supported")
        }
        guard let logged = secrets.take(clientRandom: clientRandom) else {
            throw TLSFastPathUnavailable("no session secrets were logged for this handshake")
        }
        let client: TLSTrafficKeys
        let server: TLSTrafficKeys
        switch version {
        case .tls12:
            guard let master = logged.master, let serverRandom else {
                throw TLSFastPathUnavailable("no TLS 1.2 master secret")
            }
            (client, server) = TLSKeySchedule.tls12Keys(
                masterSecret: master, clientRandom: clientRandom, serverRandom: serverRandom, suite: suite)
        case .tls13:
            guard let clientSecret = logged.clientTraffic, let serverSecret = logged.serverTraffic else {
                throw TLSFastPathUnavailable("no TLS 1.3 traffic secrets")
            }
            client = TLSKeySchedule.tls13Keys(secret: clientSecret, suite: suite)
            server = TLSKeySchedule.tls13Keys(secret: serverSecret, suite: suite)
        }
        guard outbound.partial.readableBytes == 0 else {
            throw TLSFastPathUnavailable("an outbound record is incomplete")
        }
        let (readKeys, writeKeys) = role == .server ? (client, server) : (server, client)
        let readSequence = try nextSequence(after: inbound, keys: readKeys, version: version, suite: suite)
        let writeSequence = try nextSequence(after: outbound, keys: writeKeys, version: version, suite: suite)
        do {
            return Plan(
                reader: try TLSRecordProtection(
                    version: version, suite: suite, keys: readKeys, sequence: readSequence, sealing: false),
                writer: try TLSRecordProtection(
                    version: version, suite: suite, keys: writeKeys, sequence: writeSequence, sealing: true),
                leftover: inbound.partial)
        } catch {
            throw TLSFastPathUnavailable("\(error)")
        }
    }

    /// The sequence number after the direction's last protected record: in TLS 1.2 the count of records
    /// since ChangeCipherSpec; in TLS 1.3 found by trial, as handshake-key records come first.
    private func nextSequence(
        after direction: Direction, keys: TLSTrafficKeys, version: TLSRecordVersion, suite: TLSCipherSuite
    ) throws(TLSFastPathUnavailable) -> UInt64 {
        guard let last = direction.lastProtected, direction.protectedRecords > 0 else {
            throw TLSFastPathUnavailable("no protected record went this way yet")
        }
        let candidates: [Int] =
            version == .tls12 ? [direction.protectedRecords - 1] : Array(0..<min(direction.protectedRecords, 64))
        guard
            var opener = try? TLSRecordProtection(
                version: version, suite: suite, keys: keys, sequence: 0, sealing: false)
        else { throw TLSFastPathUnavailable("the AEAD cipher failed") }
        var scratch = ByteBuffer()
        for candidate in candidates {
            opener.sequence = UInt64(candidate)
            scratch.clear()
            let opened = last.body.withUnsafeBytes { body in
                (try? opener.open(outerType: last.type, body: body, into: &scratch)) != nil
            }
            if opened { return UInt64(candidate) + 1 }
        }
        throw TLSFastPathUnavailable("the derived keys do not open the last record")
    }
}

/// Why a connection stays on NIOSSL.
public struct TLSFastPathUnavailable: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
