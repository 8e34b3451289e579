package import Logging
package import NIOCore
package import Topology

/// Opens a channel to `server` on `loop` (the session's event loop), runs `initialize` on it before it
/// carries any bytes, and succeeds with it once it is connected. The proxy's own connector is TCP through
/// `ClientBootstrap`; tests and the fuzzer hand a session channels they play the server on.
package typealias BackendConnector =
    @Sendable (
        _ server: ServerIdentity, _ loop: any EventLoop,
        _ initialize: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>
    ) -> EventLoopFuture<any Channel>

/// Client sessions built outside `ProxyService`, for the tests and the fuzzer that drive a whole session
/// over channels of their own: no TLS on either hop, and backends opened by `backendConnector`.
package enum DetachedClientSession {
    package static func handler(
        settings: ProxySettings, state: ProxyState, accounts: AccountDirectory, metrics: ProxyMetrics,
        logger: Logger, backendConnector: @escaping BackendConnector
    ) -> any ChannelHandler {
        ClientSession(
            environment: .init(
                settings: settings, state: state, accounts: accounts, serverTLS: nil, backendTLS: nil,
                metrics: metrics, logger: logger, backendConnector: backendConnector))
    }
}
