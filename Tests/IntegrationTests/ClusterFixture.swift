import Foundation
import Logging
import MariaDBClient
import Monitor
import Sandbox
import SwitchyardConfiguration
import SwitchyardServer
import TestSupport
import Topology

#if canImport(Glibc)
    import Glibc
#endif

/// A real sandbox cluster for one test: started in a private directory on free ports, always stopped.
struct ClusterFixture: Sendable {
    let manifest: SandboxManifest
    let sandbox = Sandbox()

    /// Starts a cluster, runs `body`, then stops the servers and removes the directory.
    static func with<T>(servers: Int = 3, _ body: (ClusterFixture) async throws -> T) async throws -> T {
        let directory = NSTemporaryDirectory() + "switchyard-it-\(UInt32.random(in: 0...UInt32.max))"
        let sandbox = Sandbox()
        let manifest: SandboxManifest
        do {
            let ports = try freePortRange(count: 2)
            let options = Sandbox.Options(
                servers: servers, basePort: try freePortRange(count: servers), directory: directory,
                adminPort: ports, proxyPort: ports + 1)
            manifest = try await offPool { try sandbox.up(options) }
        } catch {
            try? sandbox.down(directory: directory)
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
        let fixture = ClusterFixture(manifest: manifest)
        do {
            let result = try await body(fixture)
            try await offPool { fixture.tearDown() }
            return result
        } catch {
            try await offPool { fixture.tearDown() }
            throw error
        }
    }

    func tearDown() {
        for instance in manifest.instances {
            _ = ProcessControl.signal(instance.pid, SIGCONT, marker: instance.defaultsFile)
        }
        try? sandbox.down(directory: manifest.directory)
        try? FileManager.default.removeItem(atPath: manifest.directory)
    }

    func instance(_ name: String) -> SandboxManifest.Instance {
        manifest.instances.first { $0.name == name }!
    }

    func config() throws -> Config { try Config.load(path: manifest.config) }

    /// A controller over this cluster (not yet running).
    func controller(_ adjust: (inout Config) -> Void = { _ in }) throws -> Controller {
        var config = try config()
        adjust(&config)
        var logger = Logger(label: "test")
        logger.logLevel =
            ProcessInfo.processInfo.environment["SWITCHYARD_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        return try Controller(config: config, logger: logger)
    }

    /// Root SQL over the instance's unix socket.
    @discardableResult
    func rootSQL(_ name: String, _ sql: String) async throws -> String {
        let instance = instance(name)
        let sandbox = self.sandbox
        return try await offPool { try sandbox.rootSQL(instance, sql) }
    }

    /// Connection options for the app account over TCP with verified TLS.
    func appOptions(_ name: String) throws -> ConnectionOptions {
        ConnectionOptions(
            host: "127.0.0.1", port: instance(name).port, user: "app", password: try manifest.password("app"),
            database: "appdb", tls: TLSOptions(mode: .verifyIdentity, caFile: manifest.caFile))
    }
}

/// Runs the controller's monitor in the background for the duration of `body`.
func withMonitor<T>(_ controller: Controller, _ body: () async throws -> T) async throws -> T {
    let task = Task { try await controller.monitor.run() }
    defer { task.cancel() }
    let result = try await body()
    task.cancel()
    _ = await task.result
    return result
}

struct Timeout: Error, CustomStringConvertible {
    var description: String
}

/// Polls `condition` until it holds or `deadline` passes; returns the time it took.
@discardableResult
func poll(
    _ what: String, deadline: Duration, every interval: Duration = .milliseconds(50),
    _ condition: () async throws -> Bool
) async throws -> Duration {
    let clock = ContinuousClock()
    let start = clock.now
    while clock.now - start < deadline {
        if try await condition() { return clock.now - start }
        try await Task.sleep(for: interval)
    }
    if try await condition() { return clock.now - start }
    throw Timeout(description: "\(what): not within \(deadline)")
}

/// A TCP connection to 127.0.0.1:`port` with a 5 s receive timeout; the caller closes the descriptor.
func connectLoopback(port: Int) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw Timeout(description: "socket() failed") }
    var timeout = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = loopbackAddress(port: port)
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard connected == 0 else {
        close(fd)
        throw Timeout(description: "cannot connect to 127.0.0.1:\(port)")
    }
    return fd
}

func loopbackAddress(port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    return address
}

/// `count` consecutive free TCP ports on 127.0.0.1 (checked by binding each).
func freePortRange(count: Int) throws -> Int {
    for _ in 0..<200 {
        let base = Int.random(in: 20000...39000)
        if (base..<(base + count)).allSatisfy(isFree) { return base }
    }
    throw Timeout(description: "no free port range of \(count)")
}

private func isFree(_ port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = loopbackAddress(port: port)
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
        }
    }
}
