public import NIOCore

/// A connection's TLS record layer after the handshake, in place of NIOSSL's handler: opens inbound
/// records and seals outbound bytes with the session's keys, one AEAD call per record and no other work.
///
/// Handles what a peer may send after the handshake: application data, close_notify and other alerts,
/// TLS 1.3 NewSessionTicket (ignored) and KeyUpdate (followed, and answered when asked). Anything else,
/// or a record that fails authentication, ends the connection with the matching alert.
public final class TLSRecordHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private var reader: TLSRecordProtection
    private var writer: TLSRecordProtection
    /// The start of a record whose remaining bytes have not arrived.
    private var partial: ByteBuffer?
    private var sentCloseNotify = false
    private var receivedCloseNotify = false
    private var failed = false
    /// The last plaintext and sealed buffers, reused for the next read and write once nobody else holds
    /// them (the usual case: the session has consumed the bytes and the socket has taken the records), so
    /// a steady relay allocates nothing per record.
    private var readScratch: ByteBuffer?
    private var writeScratch: ByteBuffer?
    /// Another driver carries the connection's records (`suspend()` to `resume`).
    private var suspended = false
    /// Bytes NIO read while suspended, in order.
    private var late: ByteBuffer?
    private var context: ChannelHandlerContext?
    /// Larger buffers are not kept between reads or writes (an idle connection should not hold them).
    static let scratchLimit = 64 * 1024

    public var version: TLSRecordVersion { writer.version }
    public var cipherSuite: TLSCipherSuite { writer.suite }
    /// Records sealed with the current sending key.
    public var writerSequence: UInt64 { writer.sequence }

    /// TLS 1.3 rotates the sending key well before AES-GCM's limit (RFC 8446 §5.5).
    public static let keyUpdateInterval: UInt64 = 1 << 24
    /// KeyUpdate(update_not_requested).
    static let keyUpdate: [UInt8] = [24, 0, 0, 1, 0]

    init(reader: TLSRecordProtection, writer: TLSRecordProtection, leftover: ByteBuffer) {
        self.reader = reader
        self.writer = writer
        self.partial = leftover.readableBytes > 0 ? leftover : nil
    }

    /// The record layer's state while another driver carries the connection.
    public struct Suspended: @unchecked Sendable {
        public var reader: TLSRecordProtection
        public var writer: TLSRecordProtection
        /// The start of a record whose remaining bytes have not arrived.
        public var partial: ByteBuffer

        /// For drivers of a hop whose keys are known in advance (the fast relay's fuzzing harness).
        package init(reader: TLSRecordProtection, writer: TLSRecordProtection, partial: ByteBuffer) {
            self.reader = reader
            self.writer = writer
            self.partial = partial
        }
    }

    public func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    public func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    /// Hands the record layer to another driver of the connection (which reads and writes the socket
    /// itself): until `resume`, this handler passes nothing on, keeps the bytes NIO still reads, writes
    /// nothing and sends no alert on close. Nil when the connection has failed or is closing.
    public func suspend() -> Suspended? {
        guard !failed, !sentCloseNotify, !receivedCloseNotify, !suspended else { return nil }
        suspended = true
        return Suspended(reader: reader, writer: writer, partial: partial.take() ?? ByteBuffer())
    }

    /// Takes the record layer back: `unsent` (records the other driver sealed but could not write yet) goes
    /// out first. The records that arrived meanwhile are read by `readHeldRecords()` (so that a session can
    /// resume all its connections before any of them passes bytes on).
    public func resume(_ state: Suspended, unsent: ByteBuffer) {
        guard suspended, let context else { return }
        suspended = false
        reader = state.reader
        writer = state.writer
        if unsent.readableBytes > 0 { context.writeAndFlush(wrapOutboundOut(unsent), promise: nil) }
        var records = state.partial
        if var late = late.take() { records.writeBuffer(&late) }
        late = records
    }

    /// The records NIO read while suspended, taken away: for a driver whose connection closed (and whose
    /// pipeline is gone, so `resume` cannot run) to open them itself with `openApplicationData`.
    public func takeHeldRecords() -> ByteBuffer? {
        guard suspended else { return nil }
        return late.take()
    }

    /// Opens the whole application-data records at the start of `records` with `reader` (the state a driver
    /// got back from `suspend()` and carries on) and appends their plaintext to `plaintext`. Stops at a
    /// partial record, and before a record it does not open: another type or version, too long, not
    /// application data inside (TLS 1.3 hides the type: an alert, a KeyUpdate) or failing to open; those stay
    /// in `records`, and `reader` has not moved past them. Returns whether it stopped before such a record
    /// (which the record handler must deal with), not merely at the end of the bytes.
    @discardableResult
    public static func openApplicationData(
        _ records: inout ByteBuffer, reader: inout TLSRecordProtection, into plaintext: inout ByteBuffer
    ) -> Bool {
        while records.readableBytes >= 5 {
            let start = records.readerIndex
            let type = records.getInteger(at: start, as: UInt8.self)!
            let length = Int(records.getInteger(at: start + 3, as: UInt16.self)!)
            guard type == TLSContentType.applicationData, records.getInteger(at: start + 1, as: UInt16.self) == 0x0303,
                length <= reader.maxCiphertext
            else { return true }
            guard records.readableBytes >= 5 + length else { return false }
            let mark = plaintext.writerIndex
            let content: UInt8? = records.withUnsafeReadableBytes { bytes in
                try? reader.open(
                    outerType: type, body: UnsafeRawBufferPointer(rebasing: bytes[5..<(5 + length)]), into: &plaintext)
            }
            guard content == TLSContentType.applicationData else {
                plaintext.moveWriterIndex(to: mark)
                if content != nil { reader.unopenLast() }
                return true
            }
            records.moveReaderIndex(forwardBy: 5 + length)
        }
        return false
    }

    /// After `resume`: reads the records that arrived while suspended.
    public func readHeldRecords() {
        guard !suspended, let context, let records = late.take(), records.readableBytes > 0 else { return }
        channelRead(context: context, data: NIOAny(records))
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !failed else { return }
        var buffer = unwrapInboundIn(data)
        if suspended {
            if late == nil { late = buffer } else { late!.writeBuffer(&buffer) }
            return
        }
        if var partial = self.partial.take() {
            partial.writeBuffer(&buffer)
            buffer = partial
        }
        var plaintext = Self.reuse(&readScratch, capacity: buffer.readableBytes, context: context)
        do {
            while buffer.readableBytes >= 5 {
                let start = buffer.readerIndex
                let type = buffer.getInteger(at: start, as: UInt8.self)!
                let length = Int(buffer.getInteger(at: start + 3, as: UInt16.self)!)
                // Every record after the handshake says TLS 1.2 (also in TLS 1.3), and the header is
                // authenticated as such.
                guard buffer.getInteger(at: start + 1, as: UInt16.self) == 0x0303 else {
                    throw TLSRecordError.unexpectedMessage("a record with another version")
                }
                guard length <= reader.maxCiphertext else { throw TLSRecordError.recordOverflow(length) }
                guard buffer.readableBytes >= 5 + length else { break }
                let contentStart = plaintext.writerIndex
                let content = try buffer.withUnsafeReadableBytes { bytes throws(TLSRecordError) -> UInt8 in
                    try reader.open(
                        outerType: type, body: UnsafeRawBufferPointer(rebasing: bytes[5..<(5 + length)]),
                        into: &plaintext)
                }
                buffer.moveReaderIndex(forwardBy: 5 + length)
                guard content != TLSContentType.applicationData else { continue }
                let message = plaintext.getBytes(at: contentStart, length: plaintext.writerIndex - contentStart) ?? []
                plaintext.moveWriterIndex(to: contentStart)
                try control(content, message, context: context)
                if receivedCloseNotify { break }
            }
        } catch {
            fail(error, context: context)
            return
        }
        if buffer.readableBytes > 0 && !receivedCloseNotify {
            // Copied into a buffer of its own sized for the whole record: holding on to the read buffer
            // would keep (and, appended to, grow) its storage for as long as records straddle reads.
            let needed = 5 + Int(buffer.getInteger(at: buffer.readerIndex + 3, as: UInt16.self) ?? 0)
            var rest = context.channel.allocator.buffer(capacity: max(needed, buffer.readableBytes))
            rest.writeBuffer(&buffer)
            partial = rest
        }
        if plaintext.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(plaintext)) }
        if plaintext.capacity <= Self.scratchLimit { readScratch = plaintext }
        if receivedCloseNotify { context.close(promise: nil) }
    }

    /// A cleared buffer of at least `capacity` bytes: `scratch` itself when no one else holds it any more.
    private static func reuse(_ scratch: inout ByteBuffer?, capacity: Int, context: ChannelHandlerContext) -> ByteBuffer
    {
        guard var buffer = scratch.take() else { return context.channel.allocator.buffer(capacity: capacity) }
        buffer.clear(minimumCapacity: capacity)  // allocates only if the old bytes are still held elsewhere
        return buffer
    }

    /// Alerts and post-handshake messages.
    private func control(_ type: UInt8, _ message: [UInt8], context: ChannelHandlerContext) throws(TLSRecordError) {
        switch type {
        case TLSContentType.alert:
            guard message.count == 2 else { throw .unexpectedMessage("a malformed alert") }
            if message[1] == 0 {  // close_notify: the peer is done; so are we
                receivedCloseNotify = true
                return
            }
            // TLS 1.2 warnings (other than close_notify) change nothing; everything else is fatal.
            if reader.version == .tls12 && message[0] == 1 { return }
            throw .alertReceived(message[1])
        case TLSContentType.handshake where reader.version == .tls13:
            var offset = 0
            while offset < message.count {
                guard message.count - offset >= 4 else { throw .unexpectedMessage("a truncated handshake message") }
                let length = Int(message[offset + 1]) << 16 | Int(message[offset + 2]) << 8 | Int(message[offset + 3])
                guard message.count - offset - 4 >= length else {
                    throw .unexpectedMessage("a handshake message split across records")
                }
                switch message[offset] {
                case 4:  // NewSessionTicket: the proxy does not resume sessions
                    break
                case 24 where length == 1:  // KeyUpdate
                    try reader.updateKeys()
                    if message[offset + 4] == 1 { try sendKeyUpdate(context: context) }
                default:
                    throw .unexpectedMessage("handshake message \(message[offset]) after the handshake")
                }
                offset += 4 + length
            }
        case TLSContentType.handshake:
            throw .unexpectedMessage("renegotiation is not supported")
        default:
            throw .unexpectedMessage("a record of type \(type)")
        }
    }

    private func sendKeyUpdate(context: ChannelHandlerContext) throws(TLSRecordError) {
        var out = context.channel.allocator.buffer(capacity: 5 + writer.overhead)
        try writer.seal(type: TLSContentType.handshake, Self.keyUpdate, into: &out)
        try writer.updateKeys()
        context.writeAndFlush(wrapOutboundOut(out), promise: nil)
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let plaintext = unwrapOutboundIn(data)
        guard !failed, !sentCloseNotify, !suspended else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        let records = max(
            1, (plaintext.readableBytes + TLSRecordProtection.maxPlaintext - 1) / TLSRecordProtection.maxPlaintext)
        var out = Self.reuse(
            &writeScratch, capacity: plaintext.readableBytes + records * writer.overhead, context: context)
        do {
            try plaintext.withUnsafeReadableBytes { bytes throws(TLSRecordError) in
                var offset = 0
                repeat {
                    let end = min(bytes.count, offset + TLSRecordProtection.maxPlaintext)
                    try writer.seal(
                        type: TLSContentType.applicationData, UnsafeRawBufferPointer(rebasing: bytes[offset..<end]),
                        into: &out)
                    offset = end
                } while offset < bytes.count
            }
            if writer.version == .tls13 && writer.sequence >= Self.keyUpdateInterval {
                try writer.seal(type: TLSContentType.handshake, Self.keyUpdate, into: &out)
                try writer.updateKeys()
            }
        } catch {
            promise?.fail(error)
            fail(error, context: context)
            return
        }
        context.write(wrapOutboundOut(out), promise: promise)
        if out.capacity <= Self.scratchLimit { writeScratch = out }
    }

    public func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode != .input { sendAlert(0, level: 1, context: context) }
        context.close(mode: mode, promise: promise)
    }

    private func sendAlert(_ description: UInt8, level: UInt8, context: ChannelHandlerContext) {
        // After the peer's close_notify it has usually closed its socket too: an answer would only earn a reset.
        guard !sentCloseNotify, !receivedCloseNotify, !suspended, context.channel.isActive else { return }
        sentCloseNotify = true
        var out = context.channel.allocator.buffer(capacity: 2 + writer.overhead)
        let sealed = (try? writer.seal(type: TLSContentType.alert, [level, description], into: &out)) != nil
        if sealed { context.writeAndFlush(wrapOutboundOut(out), promise: nil) }
    }

    private func fail(_ error: any Error, context: ChannelHandlerContext) {
        guard !failed else { return }
        sendAlert((error as? TLSRecordError)?.alert ?? 80, level: 2, context: context)
        failed = true
        context.fireErrorCaught(error)
        context.close(promise: nil)
    }
}
