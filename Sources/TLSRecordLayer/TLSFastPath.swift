public import NIOCore
public import NIOSSL

/// Switchyard's TLS fast path: NIOSSL (BoringSSL) does the handshake, certificate checks and login
/// exchange; afterwards `TLSRecordHandler` protects the records itself with the session's keys, which
/// costs one AEAD call per record instead of NIOSSL's buffering, BIO and promise bookkeeping.
///
/// Set `TLSSecretLog.keyLogCallback` on the `TLSConfiguration`, add NIOSSL's handler with
/// `addTLSHandler`, and call `takeOver` once the login is complete. Whenever anything does not check
/// out, the connection simply stays on NIOSSL.
public enum TLSFastPath {
    /// Adds NIOSSL's handler first in the pipeline and, with `secrets` (the log its context reports
    /// to), a handshake observer in front of it (added before it, as a client handler starts writing its
    /// hello as soon as it is added).
    public static func addTLSHandler(
        _ tls: NIOSSLHandler, role: TLSHandshakeObserver.Role, secrets: TLSSecretLog?,
        to pipeline: ChannelPipeline.SynchronousOperations
    ) throws {
        guard let secrets else {
            try pipeline.addHandler(tls, position: .first)
            return
        }
        let observer = TLSHandshakeObserver(role: role, secrets: secrets)
        try pipeline.addHandler(observer, position: .first)
        try pipeline.addHandler(tls, position: .after(observer))
    }

    /// Replaces NIOSSL's handler with a `TLSRecordHandler`, returning the negotiated version, or why the
    /// connection stays on NIOSSL. The observer is removed either way.
    ///
    /// Call on the channel's event loop, outside any NIOSSL callback, when everything the login wrote has
    /// been flushed and the peer is waiting for the next request (so nothing is half-processed).
    public static func takeOver(
        _ pipeline: ChannelPipeline.SynchronousOperations
    ) -> Result<TLSRecordHandler, TLSFastPathUnavailable> {
        guard let observer = try? pipeline.handler(type: TLSHandshakeObserver.self) else {
            return .failure(TLSFastPathUnavailable("no handshake observer"))
        }
        // Planned before the observer leaves the pipeline: leaving drops the connection's secrets.
        let planned = Result { () throws(TLSFastPathUnavailable) in try observer.plan() }
        pipeline.removeHandler(observer, promise: nil)
        guard let tls = try? pipeline.handler(type: NIOSSLHandler.self) else {
            return .failure(TLSFastPathUnavailable("no NIOSSL handler"))
        }
        let plan: TLSHandshakeObserver.Plan
        do {
            plan = try planned.get()
        } catch {
            return .failure(error)
        }
        let handler = TLSRecordHandler(reader: plan.reader, writer: plan.writer, leftover: plan.leftover)
        pipeline.removeHandler(tls, promise: nil)
        do {
            try pipeline.addHandler(handler, position: .first)
        } catch {
            // Nothing can carry the connection's TLS any more.
            pipeline.fireErrorCaught(error)
            return .failure(TLSFastPathUnavailable("cannot add the record handler: \(error)"))
        }
        return .success(handler)
    }
}
