import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Checks and signals server processes by PID, touching only processes whose command line names the
/// sandbox's own config file.
public enum ProcessControl {
    /// True when `pid` is running (not a zombie) and, when given, its command line contains `marker`.
    public static func isRunning(_ pid: Int32, marker: String? = nil) -> Bool {
        guard pid > 0, let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else {
            return false
        }
        // The state follows the parenthesised command name: "PID (comm) S ...".
        guard let close = stat.lastIndex(of: ")") else { return false }
        let rest = stat[stat.index(after: close)...].split(separator: " ")
        if let state = rest.first, state == "Z" || state == "X" { return false }
        guard let marker else { return true }
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
        let commandLine = String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
        return commandLine.contains(marker)
    }

    /// Sends `signal` to `pid` if it is running and its command line contains `marker`.
    @discardableResult
    public static func signal(_ pid: Int32, _ signal: Int32, marker: String) -> Bool {
        guard isRunning(pid, marker: marker) else { return false }
        return kill(pid, signal) == 0
    }

    /// Waits until every thread of `pid` is stopped (state `T`), as SIGSTOP leaves them; true if they were
    /// within `timeout` seconds. `kill` returns before the threads stop: a thread woken meanwhile (by a
    /// packet) may still answer it.
    public static func waitUntilStopped(_ pid: Int32, timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        repeat {
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
            let stopped =
                !tasks.isEmpty
                && tasks.allSatisfy { task in
                    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/stat", encoding: .utf8),
                        let close = stat.lastIndex(of: ")")
                    else { return false }
                    return stat[stat.index(after: close)...].split(separator: " ").first == "T"
                }
            if stopped { return true }
            usleep(2_000)
        } while Date() < deadline
        return false
    }

    /// Waits until `pid` has exited; true if it did within `timeout` seconds.
    public static func waitForExit(_ pid: Int32, timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if !isRunning(pid) { return true }
            usleep(20_000)
        }
        return !isRunning(pid)
    }
}
