import ArgumentParser
import NormKit
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Timing of LayerNorm backward against the cost of streaming its bytes, as a
/// reusable function (`normkit bench` can call ``BackwardBenchmark/run(batch:seq:dim:repetitions:seed:)``).
///
/// Every call is timed twice: wall clock, and the calling thread's CPU time (which
/// leaves out the time the thread was descheduled on a busy machine, though not the
/// caches other processes pollute). Medians of each are reported.
enum BackwardBenchmark {
    /// A median time in milliseconds, by wall clock and by thread CPU time.
    struct Time {
        var wall: Double
        var cpu: Double
    }

    /// Medians over the repetitions.
    struct Result {
        var shape: [Int]
        var repetitions: Int
        /// `backward(outputGradient:input:statistics:)`: fresh gradients per call.
        var backward: Time
        /// `backward(..., accumulatingInto:)` into gradients allocated once.
        var backwardAccumulating: Time
        /// `forwardForTraining(_:)`, for comparison.
        var forwardForTraining: Time
        /// One SIMD pass reading x and dy and writing dx (`dx = x + dy`) into a buffer
        /// allocated once: the bytes backward has to move, at streaming speed.
        var stream: Time

        /// `backward / stream`, by wall clock.
        var streamRatio: Double { backward.wall / stream.wall }

        var report: String {
            let mb = Double(shape.reduce(1, *)) * 12 / 1e6
            func line(_ name: String, _ t: Time, ratio: Bool = true) -> String {
                name.padding(34) + "\(fmt(t.wall)) ms".padding(12) + "\(fmt(t.cpu)) ms".padding(12)
                    + (ratio ? "\(fmt(t.wall / stream.wall))x" : "")
            }
            return """
            LayerNorm backward \(shape), one thread, medians of \(repetitions) interleaved calls
            \("".padding(34))\("wall".padding(12))\("cpu".padding(12))vs stream (wall)
            \(line("stream x,dy -> dx (\(fmt(mb)) MB)", stream, ratio: false))
            \(line("backward (fresh gradients)", backward))
            \(line("backward (accumulating)", backwardAccumulating))
            \(line("forwardForTraining", forwardForTraining))
            """
        }

        private func fmt(_ v: Double) -> String { String((v * 1000).rounded() / 1000) }
    }

    /// Times backward at `[batch, seq, dim]` on seeded random data (x ~ N(0, 1), or
    /// GPT-2-like activations with massive channels; dy ~ N(0, 1), weight ~ N(1, 0.5)),
    /// interleaving the measured calls so that machine noise hits all of them alike.
    static func run(
        batch: Int, seq: Int, dim: Int, repetitions: Int, seed: UInt64, gpt2Like: Bool = false
    ) throws -> Result {
        let shape = [batch, seq, dim]
        let x = gpt2Like
            ? Activations.gpt2Like(batch: batch, seq: seq, dim: dim, seed: seed)
            : Tensor.randomNormal(shape, seed: seed)
        let dy = Tensor.randomNormal(shape, seed: seed &+ 1)
        var norm = try LayerNorm(dim: dim)
        norm.weight = Tensor.randomNormal([dim], mean: 1, standardDeviation: 0.5, seed: seed &+ 2)
        norm.bias = Tensor.randomNormal([dim], standardDeviation: 0.2, seed: seed &+ 3)
        let (_, statistics) = try norm.forwardForTraining(x)
        var accumulated = try norm.zeroGradients(inputShape: shape)
        var streamed = Tensor.zeros(shape)

        var tBackward: [Time] = [], tAccumulate: [Time] = [], tForward: [Time] = [], tStream: [Time] = []
        var sink: Float = 0
        for _ in 0..<(repetitions + 2) {  // two warm-up rounds
            tStream.append(measure { stream(x, dy, into: &streamed) })
            var g: LayerNorm.Gradients?
            tBackward.append(try measure { g = try norm.backward(outputGradient: dy, input: x, statistics: statistics) })
            sink += g!.bias.scalars[0]
            tAccumulate.append(try measure {
                try norm.backward(outputGradient: dy, input: x, statistics: statistics, accumulatingInto: &accumulated)
            })
            tForward.append(try measure { sink += try norm.forwardForTraining(x).output.scalars[0] })
        }
        if sink == .infinity { print("") }  // keep the results alive
        return Result(
            shape: shape, repetitions: repetitions,
            backward: median(tBackward.dropFirst(2)), backwardAccumulating: median(tAccumulate.dropFirst(2)),
            forwardForTraining: median(tForward.dropFirst(2)), stream: median(tStream.dropFirst(2)))
    }

    /// dx = x + dy, SIMD16 over raw pointers: reads x and dy, writes dx once.
    @inline(never)
    static func stream(_ x: Tensor, _ dy: Tensor, into dx: inout Tensor) {
        typealias V = SIMD16<Float>
        x.withUnsafeBufferPointer { xb in
            dy.withUnsafeBufferPointer { yb in
                dx.withUnsafeMutableBufferPointer { ob in
                    guard let xp = xb.baseAddress, let yp = yb.baseAddress, let op = ob.baseAddress else { return }
                    let n = xb.count
                    var i = 0
                    while i + 16 <= n {
                        let v = UnsafeRawPointer(xp + i).loadUnaligned(as: V.self)
                            + UnsafeRawPointer(yp + i).loadUnaligned(as: V.self)
                        UnsafeMutableRawPointer(op + i).storeBytes(of: v, as: V.self)
                        i += 16
                    }
                    while i < n { op[i] = xp[i] + yp[i]; i += 1 }
                }
            }
        }
    }

    /// Wall-clock and thread-CPU milliseconds of one call of `body`.
    private static func measure(_ body: () throws -> Void) rethrows -> Time {
        let wall0 = now(CLOCK_MONOTONIC), cpu0 = now(CLOCK_THREAD_CPUTIME_ID)
        try body()
        let cpu1 = now(CLOCK_THREAD_CPUTIME_ID), wall1 = now(CLOCK_MONOTONIC)
        return Time(wall: (wall1 - wall0) * 1e3, cpu: (cpu1 - cpu0) * 1e3)
    }

    private static func now(_ clock: clockid_t) -> Double {
        var ts = timespec()
        clock_gettime(clock, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    private static func median<C: Collection<Time>>(_ values: C) -> Time {
        let wall = values.map(\.wall).sorted(), cpu = values.map(\.cpu).sorted()
        return wall.isEmpty ? Time(wall: .nan, cpu: .nan) : Time(wall: wall[wall.count / 2], cpu: cpu[cpu.count / 2])
    }
}

/// The backward pass's error on the catalogued hard rows, as a reusable function.
enum BackwardAccuracy {
    /// One line per row kind: the worst, over `seeds` seeds and both a plain and a
    /// random-affine layer, of the input-gradient (per row), weight- and bias-gradient
    /// (whole tensor) errors against `Reference.layerNormBackwardDouble`, with dy ~ N(0, 1)
    /// and, as a second family, dy = x̂ (the gradient of Σy²/2, where terms cancel).
    static func table(dims: [Int], seeds: Int) throws -> (lines: [String], worst: Double) {
        var lines = ["max over \(seeds) seeds of the worst of dx (per row), dweight, dbias errors; bound 1e-5"]
        var header = "row".padding(28)
        for d in dims { header += "dim \(d)".padding(12) }
        lines.append(header + "   (dy random | dy = x̂)")
        var worst = 0.0
        for kind in Reference.HardRow.allCases {
            var line = kind.rawValue.padding(28)
            var aligned = ""
            for dim in dims {
                var plain = try LayerNorm(dim: dim)
                plain.bias = Tensor.zeros([dim])
                var affine = try LayerNorm(dim: dim)
                affine.weight = Tensor.randomNormal([dim], mean: 1, standardDeviation: 0.5, seed: 3)
                affine.bias = Tensor.randomNormal([dim], standardDeviation: 0.2, seed: 4)
                var eRandom = 0.0, eAligned = 0.0
                for seed in 0..<UInt64(seeds) {
                    let x = try Tensor(shape: [1, dim], scalars: kind.values(dim: dim, seed: seed))
                    let random = Tensor.randomNormal([1, dim], seed: seed &+ 1000)
                    let xhat = try plain(x)
                    for norm in [plain, affine] {
                        eRandom = max(eRandom, try error(norm, x, random))
                        eAligned = max(eAligned, try error(norm, x, xhat))
                    }
                }
                worst = max(worst, eRandom, eAligned)
                line += sci(eRandom).padding(12)
                aligned += sci(eAligned).padding(12)
            }
            lines.append(line + "|  " + aligned)
        }
        lines.append("worst: \(sci(worst))")
        return (lines, worst)
    }

    /// The worst of the three gradient errors for one input.
    static func error(_ norm: LayerNorm, _ x: Tensor, _ dy: Tensor) throws -> Double {
        let (_, statistics) = try norm.forwardForTraining(x)
        let got = try norm.backward(outputGradient: dy, input: x, statistics: statistics)
        let expected = try Reference.layerNormBackwardDouble(
            outputGradient: dy, input: x, weight: norm.weight, eps: norm.eps)
        return max(Reference.maxRowError(got.input, expected: expected.input),
                   Reference.maxError(got.weight, expected: expected.weight),
                   Reference.maxError(got.bias, expected: expected.bias))
    }
}

/// `normkit bench-backward`: the backward timing and accuracy above, from the command line.
struct BenchBackward: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-backward",
        abstract: "Time LayerNorm backward against streaming its bytes; optionally its hard-row accuracy."
    )

    @Option(help: "Batch size.") var batch = 8
    @Option(help: "Sequence length.") var seq = 1024
    @Option(help: "Feature dimension.") var dim = 768
    @Option(help: "Timed repetitions (the median is reported).") var repetitions = 51
    @Option(help: "Random seed.") var seed: UInt64 = 1
    @Flag(help: "Time on GPT-2-like activations (massive channels) instead of N(0, 1).") var gpt2Like = false
    @Flag(help: "Print the hard-row accuracy table instead of timing.") var accuracy = false
    @Option(help: "With --accuracy: dimensions, comma-separated.") var dims = "1,3,17,768,4099"
    @Option(help: "With --accuracy: seeds per row kind.") var seeds = 10

    func run() throws {
        if accuracy {
            let dimList = dims.split(separator: ",").compactMap { Int($0) }
            guard !dimList.isEmpty, dimList.allSatisfy({ $0 >= 1 }), seeds >= 1 else {
                throw ValidationError("--dims needs positive integers, --seeds >= 1")
            }
            let table = try BackwardAccuracy.table(dims: dimList, seeds: seeds)
            table.lines.forEach { print($0) }
            return
        }
        guard batch >= 1, seq >= 1, dim >= 1, repetitions >= 1 else {
            throw ValidationError("--batch, --seq, --dim and --repetitions must be >= 1")
        }
        let result = try BackwardBenchmark.run(
            batch: batch, seq: seq, dim: dim, repetitions: repetitions, seed: seed, gpt2Like: gpt2Like)
        print(result.report)
    }
}
