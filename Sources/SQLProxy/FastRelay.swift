import CLinuxEvents
package import Logging
package import MySQLWire
import NIOConcurrencyHelpers
package import NIOCore
package import TLSRecordLayer
package import Topology

#if canImport(Glibc)
    import Glibc
#endif

/// Carries logged-in sessions' everyday commands outside SwiftNIO's channel pipeline: one epoll loop per
/// thread reads and writes both sockets of a session itself, opens and seals its TLS records, and relays
/// queries, prepared statements and their answers with the same rules as `ClientSession` (`CommandRelay`).
/// It costs far less per query than a NIO pipeline (benchmarks/relay-floor).
///
/// `ClientSession` hands a session over when both hops are quiet and the session is in the plain command
/// phase; it gets it back, with every byte not yet dealt with, at the first thing the relay leaves to it
/// (change of user, KILL, LOAD DATA LOCAL, a refusal, a moved primary, a broken packet, EOF, an error).
package final class FastRelay: Sendable {
    private let workers: [Worker]

    /// `busyPoll`: how long a thread keeps looking for events while a server owes an answer, yielding the CPU
    /// between looks, before it sleeps (`ProxySettings.relayBusyPoll`).
    package init(threads: Int, busyPoll: Duration = .zero, logger: Logger) {
        workers = (0..<max(1, threads)).map { _ in Worker(busyPoll: TimeAmount(busyPoll), logger: logger) }
        for worker in workers { worker.start() }
    }

    /// Relays `session` until something needs its `ClientSession`; `session.returned` then gets it back.
    package func adopt(_ session: RelayedSession) {
        worker(for: session).send(.adopt(session))
    }

    /// Asks for `session` back (its client or server connection closed on the NIO side).
    package func reclaim(_ session: RelayedSession) {
        worker(for: session).send(.reclaim(session))
    }

    /// Returns every session and stops the threads; returns once they are done.
    package func stop() {
        for worker in workers { worker.stop() }
    }

    private func worker(for session: RelayedSession) -> Worker {
        workers[Int(session.connectionID) % workers.count]
    }
}

/// A session while `FastRelay` carries it: its sockets, both hops' TLS record state, the command phase's
/// bookkeeping, and the bytes not dealt with yet. Owned by one thread at a time: the relay's from
/// `adopt` until it calls `returned`, the session's event loop's otherwise.
package final class RelayedSession: @unchecked Sendable {
    package struct Hop {
        package let descriptor: Int32
        /// The hop's TLS records, nil for plaintext.
        var records: TLSRecordHandler.Suspended?
        /// Bytes for the peer the socket has not taken yet (sealed records on a TLS hop).
        var unsent = ByteBuffer()

        package init(descriptor: Int32, records: TLSRecordHandler.Suspended?) {
            self.descriptor = descriptor
            self.records = records
        }
    }

    package var client: Hop
    package var backend: Hop
    /// Client plaintext not relayed yet: an incomplete packet, or packets left to the session.
    package var clientBytes = ByteBuffer()
    /// Server plaintext not relayed yet.
    package var backendBytes = ByteBuffer()
    var relay: CommandRelay
    let connectionID: UInt32
    let capabilities: CapabilityFlags
    let server: ServerIdentity
    let state: ProxyState
    let metrics: ProxyMetrics
    /// Client packets larger than this go to the session (which streams them and enforces the limit).
    let largestPacket: Int
    let returned: @Sendable (RelayedSession) -> Void
    /// Why the relay gave the session back (for the log).
    package var reason = ""
    fileprivate var done = false
    /// Whether the relay has sent the server a command whose answer has not fully come back.
    fileprivate var awaitingAnswer = false
    fileprivate var interest: (client: UInt32, backend: UInt32) = (0, 0)

    package init(
        client: Hop, backend: Hop, relay: CommandRelay, connectionID: UInt32, capabilities: CapabilityFlags,
        server: ServerIdentity, state: ProxyState, metrics: ProxyMetrics, largestPacket: Int,
        returned: @escaping @Sendable (RelayedSession) -> Void
    ) {
        self.client = client
        self.backend = backend
        self.relay = relay
        self.connectionID = connectionID
        self.capabilities = capabilities
        self.server = server
        self.state = state
        self.metrics = metrics
        self.largestPacket = largestPacket
        self.returned = returned
    }

    /// Whether the relay carries `command`; any other goes to the session.
    static func carries(_ command: Command) -> Bool {
        switch command {
        case .query, .initDB, .ping, .fieldList, .statistics, .setOption, .resetConnection, .statementPrepare,
            .statementExecute, .statementSendLongData, .statementClose, .statementReset, .statementFetch,
            .statementBulkExecute:
            true
        default:
            false
        }
    }
}

private final class Worker: @unchecked Sendable {
    enum Message {
        case adopt(RelayedSession)
        case reclaim(RelayedSession)
        case stop
    }

    private let logger: Logger
    private let busyPoll: TimeAmount
    private let epoll: Int32
    private let wake: Int32
    /// Messages for the thread; nil once it has stopped.
    private let inbox = NIOLockedValueBox<[Message]?>([])
    private let finished = ConditionLock(value: false)
    private var sessions: [ObjectIdentifier: RelayedSession] = [:]
    /// Sessions returned during the current batch of events: kept alive until it is done, as later events
    /// of the batch may still name them.
    private var graveyard: [RelayedSession] = []
    private var stopping = false
    /// Sessions of this thread's whose server owes an answer: the thread busy-polls only while there are.
    private var sessionsAwaitingAnswers = 0

    // Buffers reused for every event, so a steady relay allocates nothing.
    private var received = ByteBufferAllocator().buffer(capacity: Worker.readSize)
    private var plaintext = ByteBufferAllocator().buffer(capacity: Worker.readSize)
    private var outgoing = ByteBufferAllocator().buffer(capacity: Worker.readSize)
    private var sealed = ByteBufferAllocator().buffer(capacity: Worker.readSize + 8 * 64)
    static let readSize = 64 * 1024
    static let wakeToken: UInt64 = 1
    static let backendBit: UInt = 1

    init(busyPoll: TimeAmount, logger: Logger) {
        self.logger = logger
        self.busyPoll = busyPoll
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        wake = eventfd(0, Int32(EFD_CLOEXEC) | Int32(EFD_NONBLOCK))
        var event = epoll_event(events: EPOLLIN.rawValue, data: epoll_data_t(u64: Self.wakeToken))
        epoll_ctl(epoll, EPOLL_CTL_ADD, wake, &event)
    }

    func start() { startThread { self.run() } }

    func send(_ message: Message) {
        let queued = inbox.withLockedValue { inbox -> Bool in
            inbox?.append(message)
            return inbox != nil
        }
        guard queued else {
            // Stopped: a session offered now goes straight back.
            if case .adopt(let session) = message {
                session.done = true
                session.reason = "the proxy is stopping"
                session.returned(session)
            }
            return
        }
        var one: UInt64 = 1
        _ = Glibc.write(wake, &one, 8)
    }

    func stop() {
        send(.stop)
        finished.lock(whenValue: true)
        finished.unlock()
    }

    private func run() {
        let capacity = 64
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: capacity)
        defer { events.deallocate() }
        while !stopping {
            let count = nextEvents(events, capacity: Int32(capacity))
            if count < 0 {
                if errno == EINTR { continue }
                logger.critical("fast relay: epoll_wait failed: \(String(cString: strerror(errno)))")
                break
            }
            for index in 0..<Int(count) {
                let event = events[index]
                if event.data.u64 == Self.wakeToken {
                    readInbox()
                    continue
                }
                let bits = UInt(event.data.u64)
                let session = Unmanaged<RelayedSession>.fromOpaque(
                    UnsafeRawPointer(bitPattern: bits & ~Self.backendBit)!
                )
                .takeUnretainedValue()
                guard !session.done else { continue }
                handle(session, backendSide: bits & Self.backendBit != 0, events: event.events)
                if !session.done { noteAwaitingAnswer(session, !session.relay.isIdle) }
            }
            graveyard.removeAll(keepingCapacity: true)
        }
        let late = inbox.withLockedValue { inbox in
            defer { inbox = nil }
            return inbox ?? []
        }
        for case .adopt(let session) in late { adopt(session) }
        for session in Array(sessions.values) { handBack(session, "the proxy is stopping") }
        graveyard.removeAll()
        close(epoll)
        close(wake)
        finished.lock()
        finished.unlock(withValue: true)
    }

    /// Waits for events. With busy polling, while a server owes an answer, it first looks again for up to
    /// `busyPoll`, yielding the CPU to anything else runnable between looks: an answer that comes
    /// back meanwhile is relayed without the thread going to sleep and waiting to be scheduled again, and the
    /// looks use only CPU time nothing else wanted. (Not while only clients are to speak next: their next
    /// command may be a long time coming.)
    private func nextEvents(_ events: UnsafeMutablePointer<epoll_event>, capacity: Int32) -> Int32 {
        if busyPoll > .zero, sessionsAwaitingAnswers > 0 {
            let deadline = NIODeadline.now() + busyPoll
            repeat {
                let count = epoll_wait(epoll, events, capacity, 0)
                if count != 0 { return count }
                sched_yield()
            } while NIODeadline.now() < deadline
        }
        return epoll_wait(epoll, events, capacity, -1)
    }

    private func readInbox() {
        var counter: UInt64 = 0
        _ = read(wake, &counter, 8)
        let messages = inbox.withLockedValue { messages in
            defer { messages?.removeAll(keepingCapacity: true) }
            return messages ?? []
        }
        for message in messages {
            switch message {
            case .adopt(let session):
                adopt(session)
            case .reclaim(let session):
                if !session.done { handBack(session, "the session asked for it back") }
            case .stop:
                stopping = true
            }
        }
    }

    private func adopt(_ session: RelayedSession) {
        sessions[ObjectIdentifier(session)] = session
        let token = UInt(bitPattern: Unmanaged.passUnretained(session).toOpaque())
        var client = epoll_event(events: EPOLLIN.rawValue, data: epoll_data_t(u64: UInt64(token)))
        var backend = epoll_event(events: EPOLLIN.rawValue, data: epoll_data_t(u64: UInt64(token | Self.backendBit)))
        session.interest = (EPOLLIN.rawValue, EPOLLIN.rawValue)
        guard epoll_ctl(epoll, EPOLL_CTL_ADD, session.client.descriptor, &client) == 0 else {
            handBack(session, "epoll_ctl: \(String(cString: strerror(errno)))", registered: false)
            return
        }
        guard epoll_ctl(epoll, EPOLL_CTL_ADD, session.backend.descriptor, &backend) == 0 else {
            epoll_ctl(epoll, EPOLL_CTL_DEL, session.client.descriptor, nil)
            handBack(session, "epoll_ctl: \(String(cString: strerror(errno)))", registered: false)
            return
        }
    }

    private func noteAwaitingAnswer(_ session: RelayedSession, _ awaiting: Bool) {
        guard awaiting != session.awaitingAnswer else { return }
        session.awaitingAnswer = awaiting
        sessionsAwaitingAnswers += awaiting ? 1 : -1
    }

    private func handBack(_ session: RelayedSession, _ reason: String, registered: Bool = true) {
        noteAwaitingAnswer(session, false)
        session.done = true
        session.reason = reason
        if registered {
            epoll_ctl(epoll, EPOLL_CTL_DEL, session.client.descriptor, nil)
            epoll_ctl(epoll, EPOLL_CTL_DEL, session.backend.descriptor, nil)
        }
        if let kept = sessions.removeValue(forKey: ObjectIdentifier(session)) { graveyard.append(kept) }
        session.returned(session)
    }

    // MARK: events

    private func handle(_ session: RelayedSession, backendSide: Bool, events: UInt32) {
        if events & EPOLLOUT.rawValue != 0 {
            guard flushUnsent(session, backendSide: backendSide) else { return }
        }
        guard events & (EPOLLIN.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 else { return }
        // A hop paused for the other's full socket is not read (its events are from before the pause).
        let readable = backendSide ? session.interest.backend : session.interest.client
        guard readable & EPOLLIN.rawValue != 0 else {
            // Hang-ups are reported whatever the interest: the session deals with it.
            if events & (EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 {
                handBack(session, "the \(backendSide ? "server" : "client") connection ended or failed")
            }
            return
        }
        if backendSide { backendReadable(session) } else { clientReadable(session) }
    }

    /// Reads what the socket has onto the end of `buffer`; false at EOF or an error (after handing the session
    /// back) or when there was nothing to read.
    private func receive(
        _ session: RelayedSession, from descriptor: Int32, side: String, into buffer: inout ByteBuffer
    ) -> Bool {
        var result = 0
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: Self.readSize) { buffer in
            result = read(descriptor, buffer.baseAddress, buffer.count)
            return max(0, result)
        }
        if result > 0 { return true }
        if result < 0, errno == EAGAIN || errno == EINTR { return false }
        handBack(
            session, "the \(side) connection " + (result == 0 ? "ended" : "failed: \(String(cString: strerror(errno)))")
        )
        return false
    }

    /// Appends the plaintext of `records` (after the hop's partial record) to `plaintext`; stops before a
    /// record that is not application data (left to the session's record handler). Returns false (after
    /// handing the session back) when a record is bad or must go to the session.
    private func open(_ records: inout TLSRecordHandler.Suspended) -> Bool {
        var input: ByteBuffer
        if records.partial.readableBytes > 0 {
            input = records.partial
            records.partial = ByteBuffer()
            input.writeBuffer(&received)
        } else {
            input = received
        }
        // A record it does not open goes to the session's record handler, from the record's start.
        let handOver = TLSRecordHandler.openApplicationData(&input, reader: &records.reader, into: &plaintext)
        if input.readableBytes > 0 { records.partial = Self.copy(input) }
        return !handOver
    }

    private static func copy(_ bytes: ByteBuffer) -> ByteBuffer {
        var copy = ByteBufferAllocator().buffer(capacity: bytes.readableBytes)
        copy.writeImmutableBuffer(bytes)
        return copy
    }

    // MARK: client to server

    private func clientReadable(_ session: RelayedSession) {
        guard let (held, recordsDone) = receivePlaintext(session, backendSide: false) else { return }
        session.metrics.bytes(fromClient: plaintext.readableBytes - held)
        let (packetsDone, commands) = relayCommands(session)
        if plaintext.readableBytes > 0 { session.clientBytes = Self.copy(plaintext) }
        guard send(commands, of: session, toBackend: true), recordsDone, packetsDone else {
            if !session.done { handBack(session, "a command or record for the session") }
            return
        }
    }

    /// Reads a hop's socket and puts its plaintext in `plaintext`, after the bytes the hop held back; returns
    /// how many of those there were, and false when a record must go to the session. Nil when there was
    /// nothing to read, or at EOF or an error (after handing the session back).
    private func receivePlaintext(_ session: RelayedSession, backendSide: Bool) -> (held: Int, recordsDone: Bool)? {
        let descriptor = backendSide ? session.backend.descriptor : session.client.descriptor
        let side = backendSide ? "server" : "client"
        let held = backendSide ? session.backendBytes.readableBytes : session.clientBytes.readableBytes
        let isTLS = backendSide ? session.backend.records != nil : session.client.records != nil
        plaintext.clear()
        guard isTLS || held > 0 else {
            // The usual case on a plaintext hop: read straight into `plaintext`.
            return receive(session, from: descriptor, side: side, into: &plaintext) ? (0, true) : nil
        }
        received.clear()
        guard receive(session, from: descriptor, side: side, into: &received) else { return nil }
        // (Reset only when used: an empty ByteBuffer costs an allocation.)
        if backendSide, held > 0 {
            plaintext.writeBuffer(&session.backendBytes)
            session.backendBytes = ByteBuffer()
        } else if !backendSide, held > 0 {
            plaintext.writeBuffer(&session.clientBytes)
            session.clientBytes = ByteBuffer()
        }
        if backendSide, session.backend.records != nil { return (held, open(&session.backend.records!)) }
        if !backendSide, session.client.records != nil { return (held, open(&session.client.records!)) }
        plaintext.writeBuffer(&received)
        return (held, true)
    }

    /// Relays the whole packets in `plaintext` while they are commands the relay carries; returns false at one
    /// it leaves to the session, and the bytes for the server: a slice of `plaintext` when no command was
    /// rewritten, `outgoing` otherwise.
    private func relayCommands(_ session: RelayedSession) -> (carriedOn: Bool, commands: ByteBuffer) {
        let unread = plaintext  // (shares the storage; slices of relayed packets come from it)
        let first = plaintext.readerIndex
        var rewriting = false
        var commands: ByteBuffer {
            rewriting ? outgoing : unread.getSlice(at: first, length: plaintext.readerIndex - first)!
        }
        while plaintext.readableBytes >= 4 {
            let start = plaintext.readerIndex
            let length =
                Int(plaintext.getInteger(at: start, endianness: .little, as: UInt16.self)!)
                | Int(plaintext.getInteger(at: start + 2, as: UInt8.self)!) << 16
            guard length < MySQLPacket.maxChunk, length <= session.largestPacket else { return (false, commands) }
            guard plaintext.readableBytes >= 4 + length else { return (true, commands) }
            guard plaintext.getInteger(at: start + 3, as: UInt8.self) == 0, length > 0, !session.relay.sendingLocalFile,
                let command = plaintext.getInteger(at: start + 4, as: UInt8.self).flatMap(Command.init(rawValue:)),
                RelayedSession.carries(command), session.state.primary == session.server
            else { return (false, commands) }
            let payload = plaintext.getSlice(at: start + 4, length: length)!
            // The session rewrites the answer's thread ids.
            if command == .query, ProcessListIDs.listsThreads(payload) { return (false, commands) }
            let sent: ByteBuffer
            switch session.relay.check(
                command, payload: payload, connectionID: session.connectionID, killTarget: { _, _ in nil })
            {
            case .send(nil):
                sent = payload
                if rewriting { outgoing.writeImmutableBuffer(plaintext.getSlice(at: start, length: 4 + length)!) }
            case .send(let rewritten?):
                sent = rewritten
                if !rewriting {
                    outgoing.clear()
                    outgoing.writeImmutableBuffer(unread.getSlice(at: first, length: start - first)!)
                    rewriting = true
                }
                MySQLPacketEncoder.write(MySQLPacket(sequenceID: 0, payload: rewritten), into: &outgoing)
            case .refuse, .answered:
                return (false, commands)  // the session answers (the check changed nothing)
            }
            session.metrics.command(command.rawValue)
            session.relay.sent(command, payload: sent, capabilities: session.capabilities)
            plaintext.moveReaderIndex(forwardBy: 4 + length)
        }
        return (true, commands)
    }

    // MARK: server to client

    private func backendReadable(_ session: RelayedSession) {
        guard let (_, recordsDone) = receivePlaintext(session, backendSide: true) else { return }
        let scan = session.relay.scanAnswers(plaintext, metrics: session.metrics, handOverUnusual: true)
        for (index, clientID) in scan.statementIDs {
            plaintext.setInteger(clientID, at: index, endianness: .little)
        }
        let answers = plaintext.readSlice(length: scan.forwardable)!
        if plaintext.readableBytes > 0 { session.backendBytes = Self.copy(plaintext) }
        guard send(answers, of: session, toBackend: false), recordsDone, scan.stop == nil else {
            if !session.done { handBack(session, "an answer or record for the session") }
            return
        }
    }

    // MARK: writing

    enum WriteResult {
        case written
        /// The socket took part: the rest waits in the hop's `unsent`.
        case waiting
        case failed(String)
    }

    /// Sends `bytes` to a hop (sealed on a TLS hop). What the socket does not take waits in the hop's
    /// `unsent`, and the other hop is not read until it is gone. False (after handing the session back) on
    /// a write error.
    private func send(_ bytes: ByteBuffer, of session: RelayedSession, toBackend: Bool) -> Bool {
        guard bytes.readableBytes > 0 else { return true }
        if !toBackend { session.metrics.bytes(toClient: bytes.readableBytes) }
        let result = toBackend ? send(bytes, to: &session.backend) : send(bytes, to: &session.client)
        return settle(session, toBackend: toBackend, result)
    }

    private func settle(_ session: RelayedSession, toBackend: Bool, _ result: WriteResult) -> Bool {
        switch result {
        case .written:
            return true
        case .waiting:
            updateInterest(session)
            return true
        case .failed(let what):
            handBack(session, "\(what) the \(toBackend ? "server" : "client") failed")
            return false
        }
    }

    private func send(_ plain: ByteBuffer, to hop: inout RelayedSession.Hop) -> WriteResult {
        var bytes: ByteBuffer
        if hop.records != nil {
            sealed.clear()
            var failed = false
            plain.withUnsafeReadableBytes { plain in
                var offset = 0
                while offset < plain.count && !failed {
                    let end = min(plain.count, offset + TLSRecordProtection.maxPlaintext)
                    do {
                        try hop.records!.writer.seal(
                            type: TLSContentType.applicationData, UnsafeRawBufferPointer(rebasing: plain[offset..<end]),
                            into: &sealed)
                    } catch {
                        failed = true
                    }
                    offset = end
                }
            }
            if failed { return .failed("sealing a record for") }
            bytes = sealed
        } else {
            bytes = plain
        }
        if hop.unsent.readableBytes > 0 {
            hop.unsent.writeBuffer(&bytes)
            return .written  // already waiting for the socket
        }
        if let failure = Self.write(&bytes, to: hop.descriptor) { return .failed(failure) }
        guard bytes.readableBytes > 0 else { return .written }
        hop.unsent = Self.copy(bytes)
        return .waiting
    }

    /// Writes as much of `bytes` as the socket takes; nil, or what failed.
    private static func write(_ bytes: inout ByteBuffer, to descriptor: Int32) -> String? {
        while bytes.readableBytes > 0 {
            let written = bytes.withUnsafeReadableBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
            if written > 0 {
                bytes.moveReaderIndex(forwardBy: written)
            } else if written < 0 && errno == EINTR {
                continue
            } else if written < 0 && errno == EAGAIN {
                return nil
            } else {
                return "writing to"
            }
        }
        return nil
    }

    /// Writes a hop's `unsent` after EPOLLOUT; once it is gone, the other hop is read again.
    private func flushUnsent(_ session: RelayedSession, backendSide: Bool) -> Bool {
        let failure =
            backendSide
            ? Self.write(&session.backend.unsent, to: session.backend.descriptor)
            : Self.write(&session.client.unsent, to: session.client.descriptor)
        if let failure { return settle(session, toBackend: backendSide, .failed(failure)) }
        let left = backendSide ? session.backend.unsent.readableBytes : session.client.unsent.readableBytes
        if left == 0 {
            if backendSide { session.backend.unsent = ByteBuffer() } else { session.client.unsent = ByteBuffer() }
            updateInterest(session)
        }
        return true
    }

    /// A hop listens for EPOLLOUT while its `unsent` waits, and is not read while the other hop's waits.
    private func updateInterest(_ session: RelayedSession) {
        let token = UInt64(UInt(bitPattern: Unmanaged.passUnretained(session).toOpaque()))
        let clientWaits = session.client.unsent.readableBytes > 0
        let backendWaits = session.backend.unsent.readableBytes > 0
        let client = (backendWaits ? 0 : EPOLLIN.rawValue) | (clientWaits ? EPOLLOUT.rawValue : 0)
        let backend = (clientWaits ? 0 : EPOLLIN.rawValue) | (backendWaits ? EPOLLOUT.rawValue : 0)
        if client != session.interest.client {
            var event = epoll_event(events: client, data: epoll_data_t(u64: token))
            epoll_ctl(epoll, EPOLL_CTL_MOD, session.client.descriptor, &event)
        }
        if backend != session.interest.backend {
            var event = epoll_event(events: backend, data: epoll_data_t(u64: token | UInt64(Self.backendBit)))
            epoll_ctl(epoll, EPOLL_CTL_MOD, session.backend.descriptor, &event)
        }
        session.interest = (client, backend)
    }
}
