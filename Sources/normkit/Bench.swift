import ArgumentParser
import Dispatch
import NormKit

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `normkit bench`: time one workload per call against streaming the same bytes
/// (a memcpy for forward, `dx = x + dy` for backward), interleaved in the same run, and
/// report median, min, GB/s and the ratio.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time LayerNorm per call against streaming the same bytes, interleaved.",
        discussion: "Rounds of about 20 ms alternate: workload calls back to back, then as many single-thread passes that only stream the call's bytes (forward: a memcpy of the input into the output; backward: dx = x + dy, reading x and dy and writing dx) and, with --threads above 1, the same pass split over as many threads, so all timings see the same load. GB/s counts the bytes a call must move (forward: input read once, output written once; backward: x and dy read, dx written). Calls shorter than 20 us are repeated within one timing and divided. Progress goes to stderr on runs longer than two seconds."
    )

    @Option(help: "Input shape, comma-separated; the last axis is normalised.")
    var shape = "8,1024,768"

    @Option(help: "Thread count (default: NORMKIT_THREADS or the number of cores).")
    var threads: Int?

    @Option(help: "Timed iterations (default: enough for about one second, 11...20000).")
    var iterations: Int?

    @Option(help: "What to time: \(Workload.allCases.map(\.rawValue).joined(separator: ", ")).")
    var workload: Workload = .forward

    @Flag(help: "Time the backward pass (the same as --workload backward).")
    var backward = false

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    @Option(help: "Random seed of the input.")
    var seed: UInt64 = 1

    @Option(help: "Mean of the input rows (standard deviation 2). At 0 every row takes the fast path; with |mean| above 2 every row of forward takes the careful path (backward: above 32).")
    var inputMean: Float = 0

    @Flag(help: "GPT-2-like input rows (N(0, 1) with three massive channels) instead of N(input-mean, 2).")
    var gpt2Like = false

    func validate() throws {
        let dims = try parsedShape()
        guard dims.last! >= 1 else { throw ValidationError("the last dimension of --shape must be >= 1") }
        if let threads, threads < 1 || threads > Parallelism.maxThreadCount {
            throw ValidationError("--threads must be in 1...\(Parallelism.maxThreadCount), got \(threads)")
        }
        if let iterations, iterations < 1 { throw ValidationError("--iterations must be >= 1, got \(iterations)") }
        if backward && !workload.isBackward && workload != .forward {
            throw ValidationError("--backward and --workload \(workload.rawValue) ask for different workloads")
        }
    }

    /// The workload to time: `--backward` means `--workload backward`.
    var chosenWorkload: Workload { backward && !workload.isBackward ? .backward : workload }

    func parsedShape() throws -> [Int] {
        let parts = shape.split(separator: ",").map { Int($0.trimmingWhitespace()) }
        guard !parts.isEmpty, parts.allSatisfy({ $0 != nil && $0! >= 0 }) else {
            throw ValidationError("--shape must be comma-separated whole numbers >= 0, like 8,1024,768; got '\(shape)'")
        }
        return parts.map { $0! }
    }

    func run() throws {
        let dims = try parsedShape()
        let threadCount = threads ?? Parallelism.defaultThreadCount
        Parallelism.threadCount = threadCount
        let loadBefore = LoadAverage.read()
        let workload = chosenWorkload
        let state = try BenchState(workload: workload, shape: dims, seed: seed, inputMean: inputMean, gpt2Like: gpt2Like)
        let result = state.measure(iterations: iterations, threads: threadCount, progress: Progress())
        let report = BenchReport(
            workload: workload, shape: dims, threads: threadCount, inputMean: inputMean, gpt2Like: gpt2Like,
            result: result, bytes: state.bytes, load: (loadBefore, LoadAverage.read()))
        print(json ? report.json : report.text)
    }
}

/// What `normkit bench` can time. Each case builds its own inputs and says which bytes
/// one call must move (the baseline streams exactly those).
enum Workload: String, CaseIterable, ExpressibleByArgument, Sendable {
    /// `LayerNorm.forward(_:into:)`: no allocation per call.
    case forward
    /// `LayerNorm.forward(_:)`: allocates its output each call.
    case forwardAllocating = "forward-alloc"
    /// `Reference.layerNorm`: the naive Double reference, for scale.
    case reference
    /// `LayerNorm.backward(outputGradient:input:statistics:)`: fresh gradients (dx,
    /// dweight, dbias) each call, as PyTorch's `native_layer_norm_backward` returns them.
    case backward
    /// `LayerNorm.backward(..., accumulatingInto:)`: adds into gradients made once.
    case backwardAccumulating = "backward-accumulate"

    var isBackward: Bool { self == .backward || self == .backwardAccumulating }

    /// Tensors a call reads or writes, each the input's size: forward reads x and
    /// writes y; backward reads x and dy and writes dx (its statistics, weight and
    /// parameter gradients are a few KB).
    var streams: Int { isBackward ? 3 : 2 }

    /// One call of the workload on `state`'s tensors.
    func runOnce(_ state: BenchState) {
        switch self {
        case .forward:
            try! state.norm.forward(state.x, into: &state.y)
        case .forwardAllocating:
            state.sink = try! state.norm.forward(state.x)
        case .reference:
            state.sink = try! Reference.layerNorm(state.x, weight: state.norm.weight, bias: state.norm.bias)
        case .backward:
            state.gradientSink = try! state.norm.backward(
                outputGradient: state.dy, input: state.x, statistics: state.statistics!)
        case .backwardAccumulating:
            try! state.norm.backward(
                outputGradient: state.dy, input: state.x, statistics: state.statistics!,
                accumulatingInto: &state.gradientSink!)
        }
    }
}

/// The tensors a bench run works on, and the timing loop.
final class BenchState {
    let workload: Workload
    let norm: LayerNorm
    let x: Tensor
    /// The output gradient (backward workloads; empty otherwise).
    let dy: Tensor
    /// What forward saved for backward (backward workloads).
    let statistics: LayerNorm.Statistics?
    var y: Tensor
    /// Where allocating workloads put their result, so it is not optimised away.
    var sink: Tensor
    /// Backward's gradients: the last fresh result, or what an accumulating call adds into.
    var gradientSink: LayerNorm.Gradients?
    /// Bytes of the input. A call must move `workload.streams` times as many.
    let bytes: Int

    init(workload: Workload, shape: [Int], seed: UInt64, inputMean: Float = 0, gpt2Like: Bool = false) throws {
        self.workload = workload
        let dim = shape.last!
        var norm = try LayerNorm(dim: dim)
        // A non-trivial affine transform, so the kernel's weight and bias loads are real.
        norm.weight = Tensor.randomNormal([dim], mean: 1, standardDeviation: 0.2, seed: seed &+ 1)
        norm.bias = Tensor.randomNormal([dim], standardDeviation: 0.1, seed: seed &+ 2)
        self.norm = norm
        if gpt2Like {
            let rows = shape.dropLast().reduce(1, *)
            x = try Tensor(shape: shape, scalars: Activations.gpt2Like(batch: 1, seq: rows, dim: dim, seed: seed).scalars)
        } else {
            x = Tensor.randomNormal(shape, mean: inputMean, standardDeviation: 2, seed: seed)
        }
        y = Tensor.zeros(shape)
        sink = y
        bytes = x.scalarCount * MemoryLayout<Float>.stride
        if workload.isBackward {
            dy = Tensor.randomNormal(shape, seed: seed &+ 3)
            statistics = try norm.forwardForTraining(x).statistics
            gradientSink = workload == .backwardAccumulating ? try norm.zeroGradients(inputShape: shape) : nil
        } else {
            dy = Tensor.zeros([0])
            statistics = nil
        }
    }

    /// A single-thread pass that only streams the bytes a call must move: a memcpy of
    /// the input into the output (forward), or `y = x + dy` (backward: reads x and dy,
    /// writes a tensor of their size).
    func baselineOnce() {
        x.withUnsafeBufferPointer { src in
            y.withUnsafeMutableBufferPointer { dst in
                guard let d = dst.baseAddress, let s = src.baseAddress else { return }
                if workload.isBackward {
                    dy.withUnsafeBufferPointer { g in BenchState.add(s, g.baseAddress!, d, src.count) }
                } else {
                    d.update(from: s, count: src.count)
                }
            }
        }
    }

    /// The same pass split into `threads` contiguous parts on Dispatch's threads.
    func baselineParallel(threads: Int) {
        x.withUnsafeBufferPointer { src in
            y.withUnsafeMutableBufferPointer { dst in
                guard let d = dst.baseAddress, let s = src.baseAddress else { return }
                dy.withUnsafeBufferPointer { g in
                    let count = src.count, backward = workload.isBackward
                    let (dp, sp) = (UncheckedPointer(d), UncheckedPointer(UnsafeMutablePointer(mutating: s)))
                    let gp = UncheckedPointer(UnsafeMutablePointer(mutating: g.baseAddress ?? s))
                    DispatchQueue.concurrentPerform(iterations: threads) { t in
                        let lo = t * count / threads, hi = (t + 1) * count / threads
                        if backward {
                            BenchState.add(sp.pointer + lo, gp.pointer + lo, dp.pointer + lo, hi - lo)
                        } else {
                            (dp.pointer + lo).update(from: sp.pointer + lo, count: hi - lo)
                        }
                    }
                }
            }
        }
    }

    /// out = a + b over `count` floats, SIMD16 over raw pointers: each byte read or
    /// written once, at streaming speed.
    @inline(never)
    static func add(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ count: Int) {
        typealias V = SIMD16<Float>
        var i = 0
        while i &+ 16 <= count {
            let v = UnsafeRawPointer(a + i).loadUnaligned(as: V.self) + UnsafeRawPointer(b + i).loadUnaligned(as: V.self)
            UnsafeMutableRawPointer(out + i).storeBytes(of: v, as: V.self)
            i &+= 16
        }
        while i < count {
            out[i] = a[i] + b[i]
            i &+= 1
        }
    }

    struct Timings {
        var workload: [Double] = []  // seconds per call
        /// The streaming baseline (a memcpy for forward), one thread and `threads` threads.
        var memcpy: [Double] = []
        var memcpyParallel: [Double] = []
        var inner = 1
    }

    /// Times `iterations` samples of the workload and as many baseline samples (and
    /// parallel baseline samples when `threads > 1`), in alternating rounds of about
    /// 20 ms each: both see the same load over the run, and workload calls still come
    /// back to back within a round, as in a model (and as PyTorch's timing script
    /// calls its kernel), so helper threads stay awake between calls.
    func measure(iterations requested: Int?, threads: Int, progress: Progress) -> Timings {
        // Warm up (page faults, caches, helper threads), then estimate one call.
        for _ in 0..<3 { workload.runOnce(self); baselineOnce() }
        var estimate = Double.infinity
        for _ in 0..<5 { estimate = min(estimate, seconds { self.workload.runOnce(self) }) }
        var t = Timings()
        t.inner = estimate < 20e-6 ? Int((20e-6 / max(estimate, 1e-9)).rounded(.up)) : 1
        let perSample = estimate * Double(t.inner)
        let iterations = requested ?? min(20_000, max(11, Int(1.0 / max(perSample, 1e-9))))
        let round = max(1, min(iterations, Int(20e-3 / max(perSample, 1e-9))))
        progress.expect(seconds: perSample * Double(iterations) * (threads > 1 ? 3 : 2), total: iterations)
        let inner = t.inner
        var done = 0
        while done < iterations {
            let n = min(round, iterations - done)
            for _ in 0..<n {
                t.workload.append(seconds { for _ in 0..<inner { self.workload.runOnce(self) } } / Double(inner))
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

/// A pointer that may cross into Dispatch's `@Sendable` closures: each part of the
/// parallel baseline writes its own range while the caller waits.
struct UncheckedPointer: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Float>
    init(_ pointer: UnsafeMutablePointer<Float>) { self.pointer = pointer }
}

/// Seconds taken by `body`, from the monotonic clock.
@inline(__always)
func seconds(_ body: () -> Void) -> Double {
    let start = monotonicNanoseconds()
    body()
    return Double(monotonicNanoseconds() &- start) * 1e-9
}

@inline(__always)
func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
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

func writeStderr(_ s: String) {
    var s = s
    s.withUTF8 { buffer in _ = write(2, buffer.baseAddress, buffer.count) }
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

/// The numbers of one bench run, as text or JSON.
struct BenchReport {
    let workload: Workload
    let shape: [Int]
    let threads: Int
    let inputMean: Float
    let gpt2Like: Bool
    let result: BenchState.Timings
    let bytes: Int
    let load: (Double?, Double?)

    struct Summary {
        let median: Double
        let min: Double
        init(_ samples: [Double]) {
            let s = samples.sorted()
            median = s.isEmpty ? .nan : s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
            self.min = s.first ?? .nan
        }
    }

    var work: Summary { Summary(result.workload) }
    var memcpy: Summary { Summary(result.memcpy) }
    var memcpyParallel: Summary? { result.memcpyParallel.isEmpty ? nil : Summary(result.memcpyParallel) }
    /// GB/s for a call of `seconds`: the bytes a call must move (`workload.streams` x
    /// the input's) over the time.
    func gbps(_ seconds: Double) -> Double { Double(workload.streams * bytes) / seconds / 1e9 }

    /// What the baseline is called: a memcpy for forward, the x + dy pass for backward.
    var baselineName: String { workload.isBackward ? "stream" : "memcpy" }

    var text: String {
        let w = work, m = memcpy
        let name = baselineName
        var lines = [
            "normkit bench: \(workload.rawValue), shape \(shape)" + (inputMean != 0 ? ", input mean \(inputMean)" : "")
                + (gpt2Like ? ", GPT-2-like input" : "")
                + ", threads \(threads), \(result.workload.count) iterations"
                + (result.inner > 1 ? " x \(result.inner) calls each" : "")
                + ", load \(load.0.map { fixed($0, 2) } ?? "?") -> \(load.1.map { fixed($0, 2) } ?? "?")",
            "  \(pad(workload.rawValue, 19)) median \(us(w.median)) us  min \(us(w.min)) us  \(fixed(gbps(w.median), 2)) GB/s",
            "  \(pad("\(name) 1 thread", 19)) median \(us(m.median)) us  min \(us(m.min)) us  \(fixed(gbps(m.median), 2)) GB/s",
        ]
        if let p = memcpyParallel {
            lines.append("  \(pad("\(name) \(threads) threads", 19)) median \(us(p.median)) us  min \(us(p.min)) us  \(fixed(gbps(p.median), 2)) GB/s")
        }
        if workload.isBackward {
            lines.append("  (stream: y = x + dy, reading x and dy and writing y: the bytes backward must move)")
        }
        lines.append("  ratio to \(name) (median): \(fixed(w.median / m.median, 3))"
            + (memcpyParallel.map { " (1 thread), \(fixed(w.median / $0.median, 3)) (\(threads) threads)" } ?? ""))
        return lines.joined(separator: "\n")
    }

    var json: String {
        let w = work, m = memcpy
        var fields: [(String, String)] = [
            ("workload", "\"\(workload.rawValue)\""),
            ("shape", "[\(shape.map(String.init).joined(separator: ","))]"),
            ("rows", String(shape.dropLast().reduce(1, *))),
            ("dim", String(shape.last!)),
            ("threads", String(threads)),
            ("input_mean", num(Double(inputMean))),
            ("gpt2_like", gpt2Like ? "true" : "false"),
            ("baseline", workload.isBackward ? "\"stream x+dy->dx\"" : "\"memcpy\""),
            ("iterations", String(result.workload.count)),
            ("calls_per_iteration", String(result.inner)),
            ("bytes", String(bytes)),
            ("traffic_bytes", String(workload.streams * bytes)),
            ("median_us", num(w.median * 1e6)),
            ("min_us", num(w.min * 1e6)),
            ("gbps", num(gbps(w.median))),
            ("memcpy_median_us", num(m.median * 1e6)),
            ("memcpy_min_us", num(m.min * 1e6)),
            ("memcpy_gbps", num(gbps(m.median))),
            ("ratio_to_memcpy", num(w.median / m.median)),
        ]
        if let p = memcpyParallel {
            fields += [
                ("memcpy_parallel_median_us", num(p.median * 1e6)),
                ("memcpy_parallel_gbps", num(gbps(p.median))),
                ("ratio_to_memcpy_parallel", num(w.median / p.median)),
            ]
        }
        fields += [("load_before", load.0.map { num($0) } ?? "null"), ("load_after", load.1.map { num($0) } ?? "null")]
        return "{" + fields.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}"
    }

    private func us(_ s: Double) -> String { fixed(s * 1e6, s < 1e-4 ? 3 : 1) }
    private func num(_ v: Double) -> String { v.isFinite ? fixed(v, 4) : "null" }
    private func pad(_ s: String, _ n: Int) -> String { s + String(repeating: " ", count: max(0, n - s.count)) }
}

/// `v` with `digits` decimals, without Foundation.
func fixed(_ v: Double, _ digits: Int) -> String {
    guard v.isFinite else { return String(v) }
    var p = 1.0
    for _ in 0..<digits { p *= 10 }
    let r = (abs(v) * p).rounded()
    let whole = Int(r / p), frac = Int(r - Double(whole) * p)
    let sign = v < 0 && r != 0 ? "-" : ""
    guard digits > 0 else { return sign + String(whole) }
    let f = String(frac)
    return sign + String(whole) + "." + String(repeating: "0", count: digits - f.count) + f
}

extension Substring {
    func trimmingWhitespace() -> Substring {
        var s = self
        while s.first?.isWhitespace == true { s = s.dropFirst() }
        while s.last?.isWhitespace == true { s = s.dropLast() }
        return s
    }
}
