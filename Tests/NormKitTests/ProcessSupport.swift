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

    /// In a freshly forked child: default dispositions and an empty signal mask. A child
    /// forked from a Swift concurrency or Dispatch thread inherits that thread's mask,
    /// which blocks SIGINT and SIGTERM.
    static func resetSignals() {
        for s in [SIGINT, SIGTERM, SIGALRM, SIGHUP] { signal(s, SIG_DFL) }
        var none = sigset_t()
        sigemptyset(&none)
        sigprocmask(SIG_SETMASK, &none, nil)
    }
}
