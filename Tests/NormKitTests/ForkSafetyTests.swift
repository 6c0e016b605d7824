// fork() while forward runs on other threads, the children calling forward too
// (docs/reliability.md, "fork()"). A child must never hang: no lock on the forward path
// may be inherited locked (the thread count was behind a mutex; the pool's mutex and
// counters are left alone in a child), and its results are the parent's bits.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NormKit
import Synchronization
import Testing

@Suite("Reliability: fork", .tags(.reliability))
struct ForkSafetyTests {
    /// Up to 3000 forks in at most 12 s (`NORMKIT_FORK_SECONDS` overrides the budget),
    /// while two parent threads call forward without a thread-count scope (so every call
    /// reads the process-wide count) on a small input and on one large enough for the
    /// pool. Each child calls both forwards and compares bits; a child that has not
    /// exited after 10 s dies of its alarm and counts as hung. One hung or wrong child
    /// fails; so do fewer than 100 forks.
    @Test(.tags(.exitTest), .disabled(if: Sanitizer.any, """
        The sanitizers' runtimes are not fork-safe in a many-threaded process: under \
        ThreadSanitizer 2 of 4 children hung in 12 s, under AddressSanitizer the run \
        failed too (without a sanitizer: none of thousands). It runs in CI's plain swift test.
        """))
    func thousandsOfForksWhileForwardRuns() async {
        let result = await #expect(processExitsWith: .success, observing: [\.standardOutputContent]) {
            let budget = Double(String(cString: getenv("NORMKIT_FORK_SECONDS") ?? strdup("12"))) ?? 12
            let small = try LayerNorm(dim: 64), big = try LayerNorm(dim: 768)
            let xs = Tensor.randomNormal([4, 64], seed: 5), xb = Tensor.randomNormal([96, 768], seed: 6)  // 2 pool threads
            let (ys, yb) = try Parallelism.withThreadCount(1) { (try small(xs), try big(xb)) }
            _ = try big(xb)  // start the pool's helpers
            let stop = Atomic<Bool>(false)
            let counts = PerThreadSlots(count: 3, initial: 0)
            runOnThreads(3) { t in
                switch t {
                case 0:
                    var ts = timespec()
                    clock_gettime(CLOCK_MONOTONIC, &ts)
                    let end = Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9 + budget
                    var forks = 0, hung = 0, wrong = 0
                    while forks < 3000 {
                        clock_gettime(CLOCK_MONOTONIC, &ts)
                        if Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9 > end { break }
                        let pid = fork()
                        if pid == 0 {
                            // A hung child dies of SIGALRM after 10 s (a blocking waitpid
                            // below keeps the fork rate up on a loaded machine). The alarm
                            // is armed first: resetSignals only unblocks it.
                            alarm(10)
                            ChildProcess.resetSignals()
                            let ok = (try? small(xs)) == ys && (try? big(xb)) == yb
                            _exit(ok ? 0 : 1)
                        }
                        guard pid > 0 else { break }
                        forks += 1
                        var status: Int32 = 0
                        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                        if status & 0x7f == SIGALRM {
                            hung += 1
                        } else if status != 0 {
                            wrong += 1
                        }
                    }
                    stop.store(true, ordering: .relaxed)
                    var line = "forks \(forks), hung \(hung), wrong \(wrong)\n"
                    line.withUTF8 { _ = write(1, $0.baseAddress, $0.count) }
                    counts.set(0, forks < 100 ? -1 : hung + wrong)  // exit 1: hung or wrong, 2: too few forks
                case 1:
                    // Small forwards, and the thread-count read each forward makes, in a
                    // tight loop: what a lock on that read would be held during.
                    while !stop.load(ordering: .relaxed) {
                        _ = try? small(xs)
                        for _ in 0..<64 { _ = Parallelism.effectiveThreadCount }
                    }
                default:
                    while !stop.load(ordering: .relaxed) { _ = try? big(xb) }
                }
            }
            guard counts.values[0] >= 0 else { exit(2) }
            guard counts.values[0] == 0 else { exit(1) }
        }
        let output = String(decoding: result?.standardOutputContent ?? [], as: UTF8.self)
        #expect(output.contains("hung 0, wrong 0"), "\(output)")
    }
}
