import Dispatch
import MySQLWire
import NIOCore
import SQLProxy
import SessionHarness

#if canImport(Glibc)
    import Glibc
#endif

/// libFuzzer entry point: arbitrary bytes through the framing decoder, the compressed-protocol decoder
/// (and the framing decoder again on what it inflates), every packet decoder, the server handshake
/// state machine and the response tracker; and, as client statements and commands, through the proxy's
/// statement readers (classifier, rewriter) and its session bookkeeping (portability, prepared-statement
/// ids across a move); and (one input in eight), split into client and server chunks, into a whole
/// logged-in session (`SessionDriver`), whose invariants trap when broken; and (another one in eight), as
/// client and server bytes on real sockets, through the fast relay (`RelayDriver`). Built with `scripts/fuzz`
/// (`-sanitize=fuzzer,address`); in a normal build the executable replays files given as arguments (a corpus or a crash) through the same code.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let bytes = ByteBuffer(bytes: UnsafeBufferPointer(start: data, count: size))

    var decoder = MySQLPacketDecoder(maxPayloadSize: 1 << 20)
    var stream = bytes
    var packets: [MySQLPacket] = []
    do {
        while let packet = try decoder.decode(buffer: &stream) { packets.append(packet) }
        _ = try decoder.decodeLast(buffer: &stream, seenEOF: true)
    } catch {}

    // Compressed protocol: a small limit keeps a zlib bomb cheap; whatever inflates is framed again.
    var compressed = CompressedPacketDecoder(maxPayloadSize: 1 << 16, expectedSequenceID: size % 2 == 0 ? 0 : nil)
    var wire = bytes
    var inflatedDecoder = MySQLPacketDecoder(maxPayloadSize: 1 << 20)
    var inner = ByteBuffer()
    do {
        while var stream = try compressed.decodeStream(&wire, maxInnerBytes: 1 << 18) {
            inner.writeBuffer(&stream.bytes)
            while try inflatedDecoder.decode(buffer: &inner) != nil {}
        }
        _ = try compressed.decodeLast(buffer: &wire, seenEOF: true)
    } catch {}

    // And the other way: any bytes, wrapped by the encoder, must come back unchanged with the ids counted.
    // A failure here is a bug in our own code, so it traps (the harness wants a crash, not an error).
    let firstID = UInt8(truncatingIfNeeded: size)
    var wrapped = ByteBuffer()
    let nextID = CompressedPacketEncoder(minimumCompressLength: size % 64, maxPayloadLength: 1 + size % 700)
        .encode(bytes, sequenceID: firstID, into: &wrapped)
    var unwrapper = CompressedPacketDecoder(expectedSequenceID: firstID)
    let unwrapped = try? unwrapper.decodeStream(&wrapped, maxInnerBytes: .max)
    precondition(unwrapped?.bytes ?? ByteBuffer() == bytes && wrapped.readableBytes == 0, "compressed round trip")
    precondition(unwrapper.expectedSequenceID == nextID, "compressed sequence ids")

    let capabilities: CapabilityFlags = [
        .protocol41, .secureConnection, .pluginAuth, .connectWithDB, .connectAttributes,
        .pluginAuthLengthEncodedClientData, .sessionTrack, .ssl, .deprecateEOF,
    ]
    _ = try? Packets.HandshakeV10.decode(bytes)
    _ = try? Packets.HandshakeResponse41.decode(bytes, serverCapabilities: capabilities)
    _ = try? Packets.OKPacket.decode(bytes, capabilities: capabilities)
    _ = try? Packets.ErrorPacket.decode(bytes, capabilities: capabilities)
    _ = try? Packets.EOFPacket.decode(bytes, capabilities: capabilities)
    _ = Packets.AuthSwitchRequest.decode(bytes)

    var machine = ServerHandshakeStateMachine(
        settings: .init(
            serverVersion: "fuzz", connectionID: 1, scramble: Array(1...20), capabilities: capabilities,
            clientHost: "127.0.0.1"))
    _ = machine.start()
    for packet in packets.prefix(4) {
        switch machine.packetReceived(packet) {
        case .lookUpCredential:
            _ = machine.credentialLookedUp(.nativePassword(doubleSHA1: Array(repeating: 7, count: 20)))
        case .startTLS: _ = machine.tlsEstablished()
        case .send, .authenticated, .failAndClose, .wait: break
        }
    }
    var tracker = ResponseTracker(command: .query, capabilities: capabilities)
    for packet in packets { _ = tracker.serverPacket(packet.payload) }
    fuzzProxySession(bytes, packets: packets)
    // A whole session costs about 20 ms an input, a hundred times the rest. One input in eight (chosen by
    // the top bits of its first byte; its low bits pick the session's options) also goes there, and another
    // eighth through the fast relay on socket pairs (its own parsing of records and packets), so the pure
    // layers above keep most of the fuzzing time.
    switch bytes.getInteger(at: bytes.readerIndex, as: UInt8.self).map({ $0 & 0b1110_0000 }) {
    case 0:
        fuzzWholeSession(Array(bytes.readableBytesView))
    case 0b0010_0000:
        let (options, steps) = RelayDriver.script(fromFuzzInput: Array(bytes.readableBytesView))
        do { try RelayDriver.run(options, steps) } catch { preconditionFailure("sealing a record failed: \(error)") }
    default:
        break
    }
    return 0
}

/// The input as a script of client and server chunks against a logged-in session (`SessionDriver`). The
/// session is async (its account lookup runs off the event loop), so this thread, which is libFuzzer's
/// and not one of the concurrency pool's, waits for it.
func fuzzWholeSession(_ input: [UInt8]) {
    let (options, steps) = SessionDriver.script(fromFuzzInput: input)
    let done = DispatchSemaphore(value: 0)
    Task {
        do {
            let outcome = try await SessionDriver.run(steps, options: options)
            precondition(outcome.violations.isEmpty, "session invariants: \(outcome.violations)")
        } catch {
            preconditionFailure("the session driver failed: \(error)")
        }
        done.signal()
    }
    done.wait()
}

/// The input as one statement, and every framed packet as a client command, through what the proxy reads
/// of them; prepares are answered OK or ERR by turns, and every fourth command the session "moves".
func fuzzProxySession(_ bytes: ByteBuffer, packets: [MySQLPacket]) {
    var statement = ByteBuffer()
    statement.writeInteger(Command.query.rawValue)
    statement.writeImmutableBuffer(bytes)
    _ = StatementClassifier.classify(statement)
    _ = StatementClassifier.readsLastInsertID(statement)
    _ = SQLRewriter.rewrite(statement, connectionID: 7, killTarget: { id, _ in id &+ 1 })

    var portability = SessionPortability()
    var statements = PreparedStatements()
    for (index, packet) in packets.enumerated() {
        guard let byte = packet.payload.getInteger(at: packet.payload.readerIndex, as: UInt8.self),
            let command = Command(rawValue: byte)
        else { continue }
        portability.commandSent(command, payload: packet.payload)
        if command == .statementPrepare {
            statements.prepareSent(packet.payload)
            let ok = ResponseTracker.PreparedStatementOK(
                statementID: UInt32(index % 5), columns: UInt16(index % 3), params: UInt16(index % 7))
            _ = statements.prepareAnswered(index % 3 == 2 ? nil : ok)
        } else if let rewritten = statements.clientCommand(command, payload: packet.payload) {
            precondition(rewritten.readableBytes >= 5, "a rewritten statement command keeps its id")
        }
        portability.responseFinished(status: index % 2 == 0 ? [.autocommit] : nil)
        if index % 4 == 3 {
            for id in statements.replayOrder {
                _ = statements.preparedAgain(
                    id, .init(statementID: id &+ UInt32(index), columns: UInt16(index % 3), params: UInt16(index % 7)))
            }
            portability.moved()
        }
        _ = portability.obstacle ?? statements.obstacle
    }
}

#if FUZZING
    /// libFuzzer's driver, which parses its own options and calls `fuzzOne` for every input.
    @_silgen_name("LLVMFuzzerRunDriver")
    func LLVMFuzzerRunDriver(
        _ argc: UnsafeMutablePointer<CInt>,
        _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
    ) -> CInt

    @main
    enum FuzzDriver {
        static func main() {
            var argc = CommandLine.argc
            var argv = CommandLine.unsafeArgv
            exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzOne))
        }
    }
#else
    @main
    enum ReplayCorpus {
        static func main() {
            for path in CommandLine.arguments.dropFirst() {
                guard let file = fopen(path, "rb") else {
                    print("cannot open \(path)")
                    exit(1)
                }
                var bytes: [UInt8] = []
                var chunk = [UInt8](repeating: 0, count: 65536)
                while true {
                    let count = fread(&chunk, 1, chunk.count, file)
                    if count <= 0 { break }
                    bytes.append(contentsOf: chunk[0..<count])
                }
                fclose(file)
                _ = bytes.withUnsafeBufferPointer { fuzzOne($0.baseAddress, $0.count) }
            }
        }
    }
#endif
