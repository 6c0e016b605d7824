#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NormKitCLISupport

extension BenchState {
    struct Timings {
        var workload: [Double] = []  // seconds per call
        /// The streaming baseline (a memcpy for forward), one thread and `threads` threads.
        var memcpy: [Double] = []
        var memcpyParallel: [Double] = []
        var inner = 1
    }

    /// The shortest warm-up of the workload before timing (see `measure`).
    static let warmUpSeconds = 0.25

    /// Times `iterations` samples of the workload and as many baseline samples (and
    /// parallel baseline samples when `threads > 1`), in alternating rounds of about
    /// 20 ms each: both see the same load over the run, and workload calls still come
    /// back to back within a round, as in a model (and as PyTorch's timing script
    /// calls its kernel), so helper threads stay awake between calls.
    /// With `gapNanoseconds`, the calling thread busy-waits that long after each timed
    /// workload sample (untimed), and samples are single calls.
    func measure(iterations requested: Int?, threads: Int, gapNanoseconds: UInt64 = 0, progress: Progress) -> Timings {
        // Warm up (page faults, caches, helper threads), then estimate one call. The
        // workload runs for at least `warmUpSeconds`: OpenBLAS (pthread builds) starts its
        // server threads when the library loads, and they spin on sched_yield for about
        // 0.1 s before they sleep, on the core NormKit's helper needs (docs/performance.md,
        // "OpenBLAS's idle threads at start-up").
        for _ in 0..<3 { workload.runOnce(self); baselineOnce() }
        let warmUpStart = monotonicNanoseconds()
        while Double(monotonicNanoseconds() &- warmUpStart) * 1e-9 < Self.warmUpSeconds { workload.runOnce(self) }
        var estimate = Double.infinity
        for _ in 0..<5 { estimate = min(estimate, seconds { self.workload.runOnce(self) }) }
        var t = Timings()
        t.inner = estimate < 20e-6 && gapNanoseconds == 0 ? Int((20e-6 / max(estimate, 1e-9)).rounded(.up)) : 1
        let perSample = estimate * Double(t.inner) + Double(gapNanoseconds) * 1e-9
        let iterations = requested ?? min(20_000, max(11, Int(1.0 / max(perSample, 1e-9))))
        let round = max(1, min(iterations, Int(20e-3 / max(perSample, 1e-9))))
        progress.expect(seconds: perSample * Double(iterations) * (threads > 1 ? 3 : 2), total: iterations)
        let inner = t.inner
        var done = 0
        while done < iterations {
            let n = min(round, iterations - done)
            for _ in 0..<n {
                t.workload.append(seconds { for _ in 0..<inner { self.workload.runOnce(self) } } / Double(inner))
                if gapNanoseconds > 0 {
                    let until = monotonicNanoseconds() &+ gapNanoseconds
                    while monotonicNanoseconds() < until {}
                }
            }
            for _ in 0..<n {
                t.memcpy.append(seconds { for _ in 0..<inner { self.baselineOnce() } } / Double(inner))
            }
            if threads > 1 {
                for _ in 0..<n {
                    t.memcpyParallel.append(seconds { for _ in 0..<inner { self.baselineParallel(threads: threads) } } / Double(inner))
                }
            }
            done += n
            progress.step(done)
        }
        progress.finish()
        return t
    }
}

/// A progress line on stderr for runs expected to take more than two seconds.
final class Progress {
    private var enabled = false
    private var total = 0
    private var start: UInt64 = 0
    private var lastPrint: UInt64 = 0

    func expect(seconds: Double, total: Int) {
        enabled = seconds > 2
        self.total = total
        start = monotonicNanoseconds()
        lastPrint = start
    }

    func step(_ done: Int) {
        guard enabled else { return }
        let now = monotonicNanoseconds()
        guard now &- lastPrint >= 1_000_000_000 else { return }
        lastPrint = now
        let elapsed = Double(now &- start) * 1e-9
        let left = elapsed / Double(done) * Double(total - done)
        writeStderr("\rbench: \(done)/\(total) iterations, \(fixed(elapsed, 1)) s, about \(fixed(left, 0)) s left   ")
    }

    func finish() {
        if enabled { writeStderr("\n") }
    }
}

/// The 1-minute load average from /proc/loadavg (Linux), or nil.
enum LoadAverage {
    static func read() -> Double? {
        guard let f = fopen("/proc/loadavg", "r") else { return nil }
        defer { fclose(f) }
        var buffer = [CChar](repeating: 0, count: 128)
        guard fgets(&buffer, Int32(buffer.count), f) != nil else { return nil }
        let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return text.split(separator: " ").first.flatMap { Double($0) }
    }
}
