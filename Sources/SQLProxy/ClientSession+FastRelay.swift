import Logging
import MySQLWire
import NIOCore
import TLSRecordLayer

#if canImport(Glibc)
    import Glibc
#endif

/// Handing a logged-in session to `FastRelay` and taking it back.
///
/// While the relay carries the session, both NIO channels stay open but read nothing (`autoRead` off), their
/// TLS record handlers are suspended, and the session's `relay` state is the relay's. NIO still reports a
/// connection that ends (and may read its last bytes first): the session then asks for itself back, and
/// those bytes are dealt with after the relay's.
extension ClientSession {
    struct FastRelayLink {
        /// The client socket's descriptor (a duplicate of NIO's), when the proxy accepted the connection itself.
        var clientDescriptor: Int32?
        /// Set while `FastRelay` carries the session.
        var relayed: RelayedSession?
        var offerScheduled = false
        /// Plaintext NIO read while the relay carried the session (TLS hops keep theirs in the record handler).
        var lateClientBytes: ByteBuffer?
        var lateBackendBytes: ByteBuffer?
        /// What waits for the session to come back.
        var afterReturn: [() -> Void] = []
        /// Descriptors whose channels closed while the relay could still use them.
        var descriptorsToClose: [Int32] = []
        /// The server hop's suspended record handler: when that connection closes while the relay carries
        /// the session, NIO may have read the server's last records into it and then removed it.
        var backendRecords: TLSRecordHandler?
        /// The session ended while the relay carried it: when the relay gives it back, the server connection
        /// gets a COM_QUIT (if it is between commands) before its descriptor closes.
        var quitOnReturn = false
    }

    /// TLS 1.3 writers this close to their KeyUpdate stay on NIO, which sends it.
    static let keyUpdateMargin: UInt64 = 1 << 16

    /// Offers the session to the relay on the next turn of the event loop (after this turn's writes are
    /// flushed), if it may be eligible.
    func offerToFastRelaySoon() {
        guard environment.fastRelay != nil, fast.clientDescriptor != nil, fast.relayed == nil, !fast.offerScheduled,
            compression == nil, let loop = context?.eventLoop
        else { return }
        fast.offerScheduled = true
        loop.assumeIsolated().execute { [self] in
            fast.offerScheduled = false
            offerToFastRelay()
        }
    }

    /// Hands the session to the relay when it is in the plain command phase with nothing in flight, both
    /// hops are plaintext or on the TLS fast path, and NIO holds no bytes of it.
    func offerToFastRelay() {
        guard let fastRelay = environment.fastRelay, fast.relayed == nil, let context, case .command = phase,
            changeUser == nil, replay == nil, compression == nil, relay.isIdle, inbound.readableBytes == 0,
            heldBackend == nil, let clientDescriptor = fast.clientDescriptor, let backend,
            let backendDescriptor = backend.descriptor, let backendSession = backend.session,
            context.channel.isActive, backend.channel.isActive
        else { return }
        let clientPipeline = context.pipeline.syncOperations
        let backendPipeline = backend.channel.pipeline.syncOperations
        let clientRecords = try? clientPipeline.handler(type: TLSRecordHandler.self)
        let backendRecords = try? backendPipeline.handler(type: TLSRecordHandler.self)
        // A hop still on NIOSSL stays on NIO.
        guard clientRecords != nil || !isTLS(context), backendRecords != nil || environment.backendTLS == nil,
            (try? context.channel.syncOptions?.getOption(.bufferedWritableBytes)) == 0,
            (try? backend.channel.syncOptions?.getOption(.bufferedWritableBytes)) == 0
        else { return }
        for handler in [clientRecords, backendRecords] {
            if let handler, handler.version == .tls13,
                handler.writerSequence >= TLSRecordHandler.keyUpdateInterval - Self.keyUpdateMargin
            {
                return
            }
        }
        let clientState = clientRecords?.suspend()
        let backendState = backendRecords?.suspend()
        guard clientRecords == nil || clientState != nil, backendRecords == nil || backendState != nil else {
            if let clientState { clientRecords?.resume(clientState, unsent: ByteBuffer()) }
            if let backendState { backendRecords?.resume(backendState, unsent: ByteBuffer()) }
            return
        }
        try? context.channel.syncOptions?.setOption(.autoRead, value: false)
        try? backend.channel.syncOptions?.setOption(.autoRead, value: false)
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let loop = context.eventLoop
        let session = RelayedSession(
            client: .init(descriptor: clientDescriptor, records: clientState),
            backend: .init(descriptor: backendDescriptor, records: backendState),
            relay: relay, connectionID: connectionID, capabilities: backendSession.capabilities,
            server: backend.server, state: environment.state, metrics: environment.metrics,
            largestPacket: min(environment.settings.maxPacketSize, 1 << 20),
            returned: { session in loop.execute { bound.value.fastRelayReturned(session) } })
        relay = CommandRelay()
        fast.relayed = session
        fast.backendRecords = backendRecords
        environment.metrics.fastRelay(handedOver: true)
        fastRelay.adopt(session)
    }

    /// The relay gave the session back: everything moves back to NIO, and what waited is dealt with.
    func fastRelayReturned(_ session: RelayedSession) {
        guard fast.relayed === session else { return }
        fast.relayed = nil
        let backendRecords = fast.backendRecords.take()
        if fast.quitOnReturn {
            fast.quitOnReturn = false
            if session.relay.isIdle { Self.sayQuit(to: session.backend) }
        }
        environment.metrics.fastRelay(handedOver: false)
        for descriptor in fast.descriptorsToClose { Glibc.close(descriptor) }
        fast.descriptorsToClose = []
        logger.trace("fast relay returned the session", metadata: ["reason": "\(session.reason)"])
        guard let context, context.channel.isActive, let backend else {
            runAfterReturn()
            return
        }
        relay = session.relay
        inbound = session.clientBytes
        if var late = fast.lateClientBytes.take() { inbound.writeBuffer(&late) }
        var held = session.backendBytes
        if var late = fast.lateBackendBytes.take() { held.writeBuffer(&late) }
        if !backend.channel.isActive, let backendRecords, var state = session.backend.records,
            var records = backendRecords.takeHeldRecords()
        {
            // NIO read the server's last records (the OK of a COMMIT RELEASE) and closed the connection, and
            // its pipeline is gone: open them here so that the answer still reaches the client.
            var all = state.partial
            all.writeBuffer(&records)
            TLSRecordHandler.openApplicationData(&all, reader: &state.reader, into: &held)
        }
        heldBackend = held.readableBytes > 0 ? held : nil
        // Bytes the relay could not write yet go first; then records that arrived meanwhile are read.
        resume(session.client, pipeline: context.pipeline.syncOperations, channel: context.channel)
        resume(session.backend, pipeline: backend.channel.pipeline.syncOperations, channel: backend.channel)
        try? context.channel.syncOptions?.setOption(.autoRead, value: true)
        try? backend.channel.syncOptions?.setOption(.autoRead, value: true)
        // Both connections are NIO's again: records that came meanwhile can be read.
        for pipeline in [backend.channel.pipeline.syncOperations, context.pipeline.syncOperations] {
            (try? pipeline.handler(type: TLSRecordHandler.self))?.readHeldRecords()
        }
        if heldBackend != nil, self.backend != nil { backendRead(ByteBuffer()) }
        if inbound.readableBytes > 0 { readInbound(context: context) }
        // Only then what waited for the session: the server's last answer (an OK before it closed the
        // connection) reaches the client before the close is dealt with.
        runAfterReturn()
        context.flush()
        self.backend?.channel.flush()
    }

    /// Writes COM_QUIT to a server hop the relay gave back (sealed with the relay's record state), so that
    /// the server sees a client leave rather than an aborted connection. Best effort: nothing if bytes still
    /// wait for the socket.
    private static func sayQuit(to hop: RelayedSession.Hop) {
        guard hop.unsent.readableBytes == 0 else { return }
        let packet: [UInt8] = [1, 0, 0, 0, Command.quit.rawValue]
        var bytes = ByteBuffer(bytes: packet)
        if var records = hop.records {
            var sealed = ByteBuffer()
            guard (try? records.writer.seal(type: TLSContentType.applicationData, packet, into: &sealed)) != nil
            else { return }
            bytes = sealed
        }
        _ = bytes.withUnsafeReadableBytes { Glibc.write(hop.descriptor, $0.baseAddress, $0.count) }
    }

    private func resume(
        _ hop: RelayedSession.Hop, pipeline: ChannelPipeline.SynchronousOperations, channel: any Channel
    ) {
        if let records = hop.records {
            (try? pipeline.handler(type: TLSRecordHandler.self))?.resume(records, unsent: hop.unsent)
        } else if hop.unsent.readableBytes > 0 {
            channel.writeAndFlush(hop.unsent, promise: nil)
        }
    }

    private func runAfterReturn() {
        let waiting = fast.afterReturn
        fast.afterReturn = []
        for step in waiting { step() }
    }

    /// Asks the relay for the session back, if it carries it; `step` runs once the session is back (now, if
    /// the relay does not carry it).
    func reclaimFromFastRelay(then step: @escaping () -> Void = {}) {
        guard let relayed = fast.relayed else {
            step()
            return
        }
        fast.afterReturn.append(step)
        environment.fastRelay?.reclaim(relayed)
    }

    /// Plaintext NIO read from the client or the server while the relay carries the session (which happens
    /// only when a connection is ending): kept for after the relay's bytes, and the session asked back.
    func keepLateBytes(_ buffer: ByteBuffer, fromBackend: Bool) {
        var buffer = buffer
        if fromBackend {
            Self.append(&buffer, to: &fast.lateBackendBytes)
        } else {
            Self.append(&buffer, to: &fast.lateClientBytes)
        }
        reclaimFromFastRelay()
    }

    private static func append(_ bytes: inout ByteBuffer, to held: inout ByteBuffer?) {
        if held == nil {
            held = bytes
        } else {
            held!.writeBuffer(&bytes)
        }
    }

    /// Closes a socket descriptor of the session's, or once the relay has stopped using it.
    func releaseDescriptor(_ descriptor: Int32) {
        if let relayed = fast.relayed {
            fast.descriptorsToClose.append(descriptor)
            environment.fastRelay?.reclaim(relayed)  // (nothing else waits: the session is ending)
        } else {
            Glibc.close(descriptor)
        }
    }
}
