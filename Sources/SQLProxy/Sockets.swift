import CLinuxEvents
import NIOConcurrencyHelpers
import Topology

#if canImport(Glibc)
    import Glibc
#endif

/// TCP sockets the proxy opens itself rather than through NIO's bootstraps, so that it holds their
/// descriptors: NIO exposes none, and `FastRelay` reads and writes logged-in sessions' sockets directly.
/// NIO is handed each connected socket with `ClientBootstrap.withConnectedSocket`.
enum Sockets {
    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ what: String, errno code: Int32 = errno) {
            description = "\(what): \(String(cString: strerror(code))) (errno \(code))"
        }
        init(message: String) { description = message }
    }

    /// A listening socket on `host:port` (port 0: any free port); returns it and the port it got.
    static func listen(host: String, port: Int, backlog: Int32) throws(Failure) -> (descriptor: Int32, port: Int) {
        let fd = try firstSocket(host: host, port: port, passive: true, "cannot listen on") { fd, info in
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            guard bind(fd, info.ai_addr, info.ai_addrlen) == 0, Glibc.listen(fd, backlog) == 0 else { return errno }
            return nil
        }
        return (fd, localPort(fd) ?? port)
    }

    /// A socket connected to `host:port`, or why not; gives up after `timeout` per address. Blocks: call off
    /// the event loops.
    static func connect(host: String, port: Int, timeout: Duration) throws(Failure) -> Int32 {
        let fd = try firstSocket(host: host, port: port, passive: false, "cannot connect to") { fd, info in
            guard Glibc.connect(fd, info.ai_addr, info.ai_addrlen) != 0 else { return nil }
            return errno == EINPROGRESS ? waitForConnection(fd, timeout: timeout) : errno
        }
        setNoDelay(fd)
        return fd
    }

    /// A non-blocking socket for the first of `host:port`'s addresses that `prepare` succeeds with (it returns
    /// nil, or the errno it failed with).
    private static func firstSocket(
        host: String, port: Int, passive: Bool, _ what: String, _ prepare: (Int32, addrinfo) -> Int32?
    ) throws(Failure) -> Int32 {
        let addresses = try resolve(host: host, port: port, passive: passive)
        defer { freeaddrinfo(addresses) }
        var lastError = Failure(message: "\(what) \(host):\(port): no address")
        var entry: UnsafeMutablePointer<addrinfo>? = addresses
        while let info = entry {
            entry = info.pointee.ai_next
            let fd = socket(
                info.pointee.ai_family,
                Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            guard fd >= 0 else {
                lastError = Failure("\(what) \(host):\(port): socket()")
                continue
            }
            if let failure = prepare(fd, info.pointee) {
                lastError = Failure("\(what) \(host):\(port)", errno: failure)
                close(fd)
                continue
            }
            return fd
        }
        throw lastError
    }

    /// Waits for a non-blocking connect; returns the errno it failed with, or nil once connected.
    private static func waitForConnection(_ fd: Int32, timeout: Duration) -> Int32? {
        var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        let milliseconds = Int32(clamping: timeout.wholeMilliseconds)
        let ready = poll(&poller, 1, max(1, milliseconds))
        if ready == 0 { return ETIMEDOUT }
        if ready < 0 { return errno }
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0 else { return errno }
        return error == 0 ? nil : error
    }

    static func setNoDelay(_ fd: Int32) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    private static func localPort(_ fd: Int32) -> Int? {
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) == 0 }
        }
        guard ok, Int32(address.ss_family) == AF_INET || Int32(address.ss_family) == AF_INET6 else { return nil }
        // sin_port and sin6_port alike: bytes 2 and 3, in network order.
        return withUnsafeBytes(of: &address) { Int($0[2]) << 8 | Int($0[3]) }
    }

    private static func resolve(host: String, port: Int, passive: Bool) throws(Failure) -> UnsafeMutablePointer<
        addrinfo
    > {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0)
        var result: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host.isEmpty ? nil : host, String(port), &hints, &result)
        guard status == 0, let result else {
            throw Failure(message: "cannot resolve \(host): \(String(cString: gai_strerror(status)))")
        }
        return result
    }
}

/// Accepts clients on a listening socket, on a thread of its own, and hands each connected socket on.
final class Acceptor: Sendable {
    private let listener: Int32
    private let wake: Int32
    private let stopped = NIOLockedValueBox(false)
    private let finished = ConditionLock(value: false)

    /// Starts accepting on `listener` (which the acceptor then owns); `accepted` gets each new socket
    /// (non-blocking, TCP_NODELAY set) and owns it.
    init(listener: Int32, accepted: @escaping @Sendable (Int32) -> Void) {
        self.listener = listener
        self.wake = eventfd(0, Int32(EFD_CLOEXEC))
        let thread = Thread(acceptor: self, accepted: accepted)
        thread.start()
    }

    /// Stops accepting and closes the listening socket; returns once the thread is done.
    func stop() {
        guard
            !stopped.withLockedValue({ old in
                defer { old = true }; return old
            })
        else { return }
        var one: UInt64 = 1
        _ = Glibc.write(wake, &one, 8)
        finished.lock(whenValue: true)
        finished.unlock()
        close(listener)
        close(wake)
    }

    private final class Thread: @unchecked Sendable {
        let acceptor: Acceptor
        let accepted: @Sendable (Int32) -> Void
        init(acceptor: Acceptor, accepted: @escaping @Sendable (Int32) -> Void) {
            self.acceptor = acceptor
            self.accepted = accepted
        }

        func start() { startThread { self.run() } }

        func run() {
            var polls = [
                pollfd(fd: acceptor.listener, events: Int16(POLLIN), revents: 0),
                pollfd(fd: acceptor.wake, events: Int16(POLLIN), revents: 0),
            ]
            while true {
                if poll(&polls, 2, -1) < 0 && errno != EINTR { break }
                if polls[1].revents != 0 { break }
                while true {
                    let fd = switchyard_accept(acceptor.listener)
                    if fd < 0 {
                        if errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM {
                            usleep(10_000)  // out of descriptors: wait for sessions to end rather than spin
                        }
                        break
                    }
                    Sockets.setNoDelay(fd)
                    accepted(fd)
                }
            }
            acceptor.finished.lock()
            acceptor.finished.unlock(withValue: true)
        }
    }
}

/// Runs `body` on a thread of its own (the proxy's acceptor and fast-relay loops block in poll and epoll,
/// which must not hold a thread of the concurrency pool or an event loop).
func startThread(_ body: @escaping @Sendable () -> Void) {
    final class Box: Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    var thread = pthread_t()
    pthread_create(
        &thread, nil,
        { raw in
            Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
            return nil
        }, Unmanaged.passRetained(Box(body)).toOpaque())
    pthread_detach(thread)
}
