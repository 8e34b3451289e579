import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A stand-in for the admin API that answers every request the moment its head is in (a GET has nothing
/// more) and then closes its side: the earliest a server can answer and close. It then reads until the
/// client closes (so the client gets no reset). One connection at a time, on 127.0.0.1.
final class EagerHTTPServer: Sendable {
    let port: Int
    private let listener: Int32

    /// `answer`: the bytes sent on every connection (a whole HTTP response, or part of one).
    init(answer: String) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = loopbackAddress(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ready = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                listener >= 0 && bind(listener, $0, length) == 0 && getsockname(listener, $0, &length) == 0
                    && listen(listener, 16) == 0
            }
        }
        guard ready else {
            let reason = String(cString: strerror(errno))
            if listener >= 0 { close(listener) }
            throw Timeout(description: "the stand-in admin API could not listen: \(reason)")
        }
        self.listener = listener
        port = Int(UInt16(bigEndian: address.sin_port))
        let bytes = Array(answer.utf8)
        Thread.detachNewThread {
            // The thread owns the listener and closes it once `stop` has shut it down.
            defer { close(listener) }
            while true {
                let connection = accept(listener, nil, nil)
                if connection < 0 && (errno == EINTR || errno == ECONNABORTED) { continue }
                guard connection >= 0 else { return }  // stopped
                var request: [UInt8] = []
                var chunk = [UInt8](repeating: 0, count: 4096)
                while !request.ends(with: Array("\r\n\r\n".utf8)) {
                    let count = chunk.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
                    guard count > 0 else { break }
                    request += chunk[..<count]
                }
                _ = bytes.withUnsafeBytes { send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                shutdown(connection, Int32(SHUT_WR))
                while chunk.withUnsafeMutableBytes({ recv(connection, $0.baseAddress, $0.count, 0) }) > 0 {}
                close(connection)
            }
        }
    }

    /// Stops accepting: the next (or a blocked) `accept` fails and the thread closes the listener.
    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
    }
}

extension Array where Element == UInt8 {
    fileprivate func ends(with suffix: [UInt8]) -> Bool {
        count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix
    }
}
