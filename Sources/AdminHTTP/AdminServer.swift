import Foundation
public import Hummingbird
public import Logging
public import Prometheus
public import Topology

/// The admin API: `GET /v1/status`, `GET /v1/lag`, `GET /metrics` (Prometheus text) and `GET /healthz`.
/// Every route but `/healthz` needs `Authorization: Bearer <token>` when a token is configured; it
/// refuses to listen beyond loopback without one.
public enum AdminServer {
    public struct Settings: Sendable {
        public var host: String
        public var port: Int
        public var token: String?
        public var lagWindow: Duration

        public init(host: String, port: Int, token: String?, lagWindow: Duration) {
            self.host = host
            self.port = port
            self.token = token
            self.lagWindow = lagWindow
        }
    }

    public struct InsecureListen: Error, CustomStringConvertible {
        public var host: String
        public var description: String {
            "refusing to serve the admin API on \(host) without a token: set admin.token_env or admin.token_file"
        }
    }

    /// Builds the HTTP application (a `Service`).
    public static func make(
        settings: Settings,
        registry: PrometheusCollectorRegistry,
        snapshot: @escaping @Sendable () async -> ClusterSnapshot,
        proxyStatus: @escaping @Sendable () -> StatusDocument.Proxy? = { nil },
        logger: Logger,
        onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) throws -> some ApplicationProtocol {
        let loopback = settings.host == "localhost" || settings.host == "::1" || settings.host.hasPrefix("127.")
        if !loopback && (settings.token ?? "").isEmpty { throw InsecureListen(host: settings.host) }

        let router = Router()
        router.add(middleware: BearerTokenMiddleware(token: settings.token, openPaths: ["/healthz"]))
        router.get("/healthz") { _, _ in "ok\n" }
        router.get("/v1/status") { _, _ -> Response in
            try json(StatusDocument(await snapshot(), proxy: proxyStatus()))
        }
        router.get("/v1/lag") { _, _ -> Response in
            try json(LagDocument(await snapshot(), window: settings.lagWindow))
        }
        router.get("/metrics") { _, _ -> Response in
            var buffer: [UInt8] = []
            registry.emit(into: &buffer)
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: buffer)))
        }
        return Application(
            router: router,
            configuration: ApplicationConfiguration(
                address: .hostname(settings.host, port: settings.port), serverName: "switchyard"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? settings.port) },
            logger: logger)
    }

    static func json(_ value: some Encodable) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(value)
        return Response(
            status: .ok, headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// Checks `Authorization: Bearer <token>` in constant time; 401 otherwise.
struct BearerTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: [UInt8]?
    let openPaths: Set<String>

    init(token: String?, openPaths: Set<String>) {
        self.token = token.flatMap { $0.isEmpty ? nil : Array($0.utf8) }
        self.openPaths = openPaths
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        guard let token, !openPaths.contains(request.uri.path) else { return try await next(request, context) }
        let header = request.headers[.authorization] ?? ""
        let prefix = "Bearer "
        guard header.hasPrefix(prefix), Self.constantTimeEqual(Array(header.utf8.dropFirst(prefix.utf8.count)), token)
        else {
            return Response(
                status: .unauthorized,
                headers: [.wwwAuthenticate: "Bearer realm=\"switchyard\"", .contentType: "application/json"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: "{\"error\":\"missing or wrong bearer token\"}\n")))
        }
        return try await next(request, context)
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for index in 0..<max(a.count, b.count) {
            difference |= (index < a.count ? a[index] : 0) ^ (index < b.count ? b[index] : 0)
        }
        return difference == 0
    }
}
