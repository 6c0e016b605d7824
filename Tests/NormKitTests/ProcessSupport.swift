// Child processes for the fork, kill and exit tests: waiting with a deadline, so a hung
// child fails its test instead of hanging the suite.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

enum ChildProcess {
    /// Waits for `pid` until `seconds` have passed; returns its wait status, or nil after
    /// killing it with SIGKILL (and reaping it) when it did not end in time.
    static func wait(_ pid: pid_t, seconds: Double) -> Int32? {
        var status: Int32 = 0
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        let deadline = Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9 + seconds
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { return status }
            if r < 0 && errno != EINTR { return status }
            clock_gettime(CLOCK_MONOTONIC, &ts)
            if Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9 > deadline {
                kill(pid, SIGKILL)
                waitpid(pid, &status, 0)
                return nil
            }
            usleep(1000)
        }
    }

    /// Runs `executable` with `arguments` (through posix_spawn, not Foundation's Process,
    /// whose run() leaks a weak reference that LeakSanitizer reports) and returns its exit
    /// status and everything it wrote to standard output and standard error.
    static func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw SpawnError(call: "pipe", code: errno) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        close(fds[1])
        guard spawned == 0 else {
            close(fds[0])
            throw SpawnError(call: "posix_spawn \(executable)", code: spawned)
        }
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
            if n > 0 { output += buffer[0..<n]; continue }
            if n < 0 && errno == EINTR { continue }
            break
        }
        close(fds[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        // WIFEXITED / WEXITSTATUS, spelled out (the C macros are not imported).
        let exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (exitStatus, String(decoding: output, as: UTF8.self))
    }

    /// A system call that `run` needed failed.
    struct SpawnError: Error, CustomStringConvertible {
        var call: String
        var code: Int32
        var description: String { "\(call) failed: \(String(cString: strerror(code)))" }
    }

    /// In a freshly forked child: default dispositions and an empty signal mask. A child
    /// forked from a Swift concurrency or Dispatch thread inherits that thread's mask,
    /// which blocks SIGINT and SIGTERM.
    ///
    /// Only system calls, no Swift runtime: a child of a many-threaded process may not
    /// take a lock another thread held at fork(). Iterating a Swift array here looked up
    /// Array's Sequence witness table, whose runtime lock a parent thread held: the child
    /// hung for good before its alarm was set (seen once in 3000-fork runs).
    static func resetSignals() {
        var none = sigset_t()
        sigemptyset(&none)
        sigprocmask(SIG_SETMASK, &none, nil)
        signal(SIGALRM, SIG_DFL)
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
        signal(SIGHUP, SIG_DFL)
    }
}
