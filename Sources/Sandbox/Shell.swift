import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Starts programs with posix_spawn and waits for them with waitpid (Foundation's `Process` was seen
/// to hang in `waitUntilExit` here).
public enum ChildProcess {
    public struct Failure: Error, CustomStringConvertible {
        public var command: String
        public var status: Int32
        public var output: String
        public var description: String {
            let tail = output.split(separator: "\n").suffix(8).joined(separator: "\n    ")
            return "`\(command)` failed with status \(status)\(tail.isEmpty ? "" : ":\n    \(tail)")"
        }
    }

    public struct Result: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    /// Finds an executable on PATH or in the sbin directories Debian uses for servers.
    public static func find(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let directories =
            path.split(separator: ":").map(String.init) + ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/sbin"]
        return directories.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Runs a program to completion (stdin from /dev/null) and returns its exit status and output.
    public static func capture(_ executable: String, _ arguments: [String]) throws -> Result {
        let out = try makePipe()
        let err = try makePipe()
        let pid = try spawn(executable, arguments) { actions in
            posix_spawn_file_actions_adddup2(&actions, out.write, 1)
            posix_spawn_file_actions_adddup2(&actions, err.write, 2)
            for fd in [out.read, out.write, err.read, err.write] { posix_spawn_file_actions_addclose(&actions, fd) }
        }
        close(out.write)
        close(err.write)
        // Drain both pipes on two threads so neither can fill up and block the child. (A queue of its own: a
        // serial queue gets a thread even when the shared workers, which may be waiting here, are all busy.)
        let stderrBytes = LockedBytes()
        let done = DispatchSemaphore(value: 0)
        let errRead = err.read
        DispatchQueue(label: "switchyard.shell.stderr").async {
            stderrBytes.set(readAll(errRead))
            done.signal()
        }
        let stdoutBytes = readAll(out.read)
        done.wait()
        close(out.read)
        close(err.read)
        let status = waitForExit(pid)
        return Result(
            status: status, stdout: String(decoding: stdoutBytes, as: UTF8.self),
            stderr: String(decoding: stderrBytes.get(), as: UTF8.self))
    }

    /// Runs a program; returns stdout and stderr together; throws on a non-zero exit status.
    @discardableResult
    public static func run(_ executable: String, _ arguments: [String]) throws -> String {
        let result = try capture(executable, arguments)
        let text = result.stdout + result.stderr
        guard result.status == 0 else {
            throw Failure(
                command: ([executable] + arguments).joined(separator: " "), status: result.status, output: text)
        }
        return text
    }

    /// Starts a program in the background with stdout and stderr appended to `logFile`; returns its PID.
    public static func launch(_ executable: String, _ arguments: [String], logFile: String) throws -> Int32 {
        try spawn(executable, arguments) { actions in
            posix_spawn_file_actions_addopen(&actions, 1, logFile, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }
    }

    /// Waits for a child started here to exit; returns its exit status (128+signal when killed).
    public static func waitForExit(_ pid: Int32) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return decode(status)
    }

    /// Returns the exit status if the child has exited, nil while it runs.
    public static func exitStatusIfExited(_ pid: Int32) -> Int32? {
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        return result == pid ? decode(status) : nil
    }

    private static func decode(_ status: Int32) -> Int32 {
        // WIFEXITED / WEXITSTATUS, spelled out (the C macros are not imported).
        (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// Held while pipes are made and while children are spawned (see `makePipe`).
    private static let spawning = Mutex(())

    private static func makePipe() throws -> (read: Int32, write: Int32) {
        // Close-on-exec, set before any other thread can spawn: a child started meanwhile must not inherit
        // the write ends (the reader here would wait for that child to exit too; a server started by a test
        // beside it would hold them for its whole life). The spawn actions dup2 them onto 1 and 2, which
        // clears the flag there. (Glibc's pipe2 is not imported.)
        try spawning.withLock { _ in
            var ends: [Int32] = [0, 0]
            guard pipe(&ends) == 0 else { throw SandboxError("pipe() failed: errno \(errno)") }
            for fd in ends { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            return (ends[0], ends[1])
        }
    }

    private static func readAll(_ fd: Int32) -> [UInt8] {
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count > 0 {
                output.append(contentsOf: buffer[0..<count])
            } else if count == 0 || errno != EINTR {
                return output
            }
        }
    }

    private static func spawn(
        _ executable: String, _ arguments: [String], _ configure: (inout posix_spawn_file_actions_t) -> Void
    ) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        configure(&actions)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = ProcessInfo.processInfo.environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let spawned = spawning.withLock { _ in posix_spawn(&pid, executable, &actions, nil, argv, envp) }
        guard spawned == 0 else {
            throw SandboxError("cannot start \(executable): \(String(cString: strerror(spawned)))")
        }
        return pid
    }
}

/// Bytes handed from a reader thread.
private final class LockedBytes: @unchecked Sendable {
    // @unchecked Sendable: `bytes` is only touched while holding `lock`.
    private let lock = NSLock()
    private var bytes: [UInt8] = []
    func set(_ value: [UInt8]) { lock.withLock { bytes = value } }
    func get() -> [UInt8] { lock.withLock { bytes } }
}
