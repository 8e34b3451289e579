import CEpoll
import Glibc

// epoll-relay LISTEN_PORT SERVER_PORT
//
// The floor of a relay outside SwiftNIO: one thread, one level-triggered epoll set, each accepted client
// glued to a fresh connection to 127.0.0.1:SERVER_PORT. Bytes pass unchanged (TLS too); one read(2) per
// readiness event and the bytes written straight on. When the other side cannot take them all, the rest
// waits and reading from this side stops until it has been written (backpressure).

guard CommandLine.arguments.count == 3, let listenPort = UInt16(CommandLine.arguments[1]),
    let serverPort = UInt16(CommandLine.arguments[2])
else {
    print("usage: epoll-relay LISTEN_PORT SERVER_PORT")
    exit(2)
}

/// One socket of a client-server pair.
final class End {
    let fd: Int32
    unowned(unsafe) var peer: End
    /// Bytes read from the peer that this socket has not taken yet.
    var pending: [UInt8] = []
    var connecting = false

    init(fd: Int32, peer: End?) {
        self.fd = fd
        self.peer = peer ?? unsafeBitCast(0, to: End.self)
    }
}

let readable: UInt32 = EPOLLIN.rawValue
let writable: UInt32 = EPOLLOUT.rawValue
let failed: UInt32 = EPOLLHUP.rawValue | EPOLLERR.rawValue

func loopback(_ port: UInt16) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    return address
}

func withSockaddr<T>(_ address: sockaddr_in, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
    withUnsafePointer(to: address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
}

func fail(_ what: String) -> Never {
    perror(what)
    exit(1)
}

/// The relay's sockets and loop; everything runs on the thread that calls `run()`.
final class EpollRelay {
    private let listener: Int32
    private let poller: Int32
    private let serverPort: UInt16
    private var ends = [End?](repeating: nil, count: 1 << 16)
    private let bufferSize = 64 * 1024
    private let buffer: UnsafeMutableRawPointer
    private var one: Int32 = 1

    init(listenPort: UInt16, serverPort: UInt16) {
        self.serverPort = serverPort
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        var reuse: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        guard withSockaddr(loopback(listenPort), { bind(listener, $0, $1) }) == 0 else { fail("bind") }
        guard listen(listener, 1024) == 0 else { fail("listen") }
        self.listener = listener
        poller = epoll_create1(0)
        buffer = UnsafeMutableRawPointer.allocate(byteCount: bufferSize, alignment: 16)
        watch(EPOLL_CTL_ADD, listener, readable)
    }

    private func watch(_ operation: Int32, _ fd: Int32, _ events: UInt32) {
        var event = epoll_event()
        event.events = events
        event.data.fd = fd
        epoll_ctl(poller, operation, fd, &event)
    }

    private func acceptClients() {
        while true {
            let client = epoll_relay_accept(listener)
            guard client >= 0 else { return }
            let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            guard server >= 0, Int(max(client, server)) < ends.count else {
                close(client)
                if server >= 0 { close(server) }
                continue
            }
            for fd in [client, server] {
                setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            }
            _ = withSockaddr(loopback(serverPort)) { connect(server, $0, $1) }
            let clientEnd = End(fd: client, peer: nil)
            let serverEnd = End(fd: server, peer: clientEnd)
            clientEnd.peer = serverEnd
            serverEnd.connecting = true
            ends[Int(client)] = clientEnd
            ends[Int(server)] = serverEnd
            // The client is heard only once the server's connection is up (the server speaks first anyway).
            watch(EPOLL_CTL_ADD, client, 0)
            watch(EPOLL_CTL_ADD, server, writable)
        }
    }

    private func closePair(_ end: End) {
        for fd in [end.fd, end.peer.fd] {
            epoll_ctl(poller, EPOLL_CTL_DEL, fd, nil)
            close(fd)
            ends[Int(fd)] = nil
        }
    }

    /// Writes what `end` still owes its socket; true when nothing is left.
    private func drain(_ end: End) -> Bool {
        let written = end.pending.withUnsafeBytes { write(end.fd, $0.baseAddress, $0.count) }
        if written > 0 { end.pending.removeFirst(written) }
        return end.pending.isEmpty
    }

    private func relay(from end: End) {
        let count = read(end.fd, buffer, bufferSize)
        if count < 0 && (errno == EAGAIN || errno == EINTR) { return }
        guard count > 0 else {
            closePair(end)
            return
        }
        let written = max(write(end.peer.fd, buffer, count), 0)
        guard written < count else { return }
        end.peer.pending.append(contentsOf: UnsafeRawBufferPointer(start: buffer + written, count: count - written))
        watch(EPOLL_CTL_MOD, end.peer.fd, readable | writable)
        watch(EPOLL_CTL_MOD, end.fd, 0)
    }

    /// The socket `end` finished connecting or can take more bytes.
    private func becameWritable(_ end: End) {
        if end.connecting {
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(end.fd, SOL_SOCKET, SO_ERROR, &error, &length)
            guard error == 0 else {
                closePair(end)
                return
            }
            end.connecting = false
        } else if !drain(end) {
            return
        }
        watch(EPOLL_CTL_MOD, end.fd, readable)
        watch(EPOLL_CTL_MOD, end.peer.fd, readable)
    }

    func run() -> Never {
        // A buffer of its own: an array passed inout while a slice of it is alive would be copied each time.
        let capacity = 256
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: capacity)
        while true {
            let ready = epoll_wait(poller, events, Int32(capacity), -1)
            guard ready > 0 else { continue }
            for index in 0..<Int(ready) {
                let event = events[index]
                let fd = event.data.fd
                if fd == listener {
                    acceptClients()
                } else if let end = ends[Int(fd)] {
                    if event.events & writable != 0 {
                        becameWritable(end)
                    } else if event.events & (readable | failed) != 0 {
                        relay(from: end)
                    }
                }
            }
        }
    }
}

EpollRelay(listenPort: listenPort, serverPort: serverPort).run()
