import ArgumentParser
import NormKit

/// Timing of LayerNorm backward against the cost of streaming its bytes, as a
/// reusable function (`normkit bench` can call ``BackwardBenchmark/run(batch:seq:dim:repetitions:seed:)``).
enum BackwardBenchmark {
    /// Medians over the repetitions, in milliseconds.
    struct Result {
        var shape: [Int]
        var repetitions: Int
        /// `backward(outputGradient:input:statistics:)`: fresh gradients per call.
        var backward: Double
        /// `backward(..., accumulatingInto:)` into gradients allocated once.
        var backwardAccumulating: Double
        /// `forwardForTraining(_:)`, for comparison.
        var forwardForTraining: Double
        /// One SIMD pass reading x and dy and writing dx (`dx = x + dy`) into a buffer
        /// allocated once: the bytes backward has to move, at streaming speed.
        var stream: Double

        /// `backward / stream`.
        var streamRatio: Double { backward / stream }

        var report: String {
            let mb = Double(shape.reduce(1, *)) * 12 / 1e6
            return """
            LayerNorm backward \(shape), one thread, median of \(repetitions) (interleaved):
              stream x,dy -> dx (\(fmt(mb)) MB)   \(fmt(stream)) ms
              backward (fresh gradients)     \(fmt(backward)) ms   \(fmt(streamRatio))x stream
              backward (accumulating)        \(fmt(backwardAccumulating)) ms   \(fmt(backwardAccumulating / stream))x stream
              forwardForTraining             \(fmt(forwardForTraining)) ms
            """
        }

        private func fmt(_ v: Double) -> String { String((v * 1000).rounded() / 1000) }
    }

    /// Times backward at `[batch, seq, dim]` on seeded random data (x ~ N(0, 1),
    /// dy ~ N(0, 1), weight ~ N(1, 0.5)), interleaving the measured calls so that
    /// machine noise hits all of them alike.
    static func run(batch: Int, seq: Int, dim: Int, repetitions: Int, seed: UInt64) throws -> Result {
        let shape = [batch, seq, dim]
        let x = Tensor.randomNormal(shape, seed: seed)
        let dy = Tensor.randomNormal(shape, seed: seed &+ 1)
        var norm = try LayerNorm(dim: dim)
        norm.weight = Tensor.randomNormal([dim], mean: 1, standardDeviation: 0.5, seed: seed &+ 2)
        norm.bias = Tensor.randomNormal([dim], standardDeviation: 0.2, seed: seed &+ 3)
        let (_, statistics) = try norm.forwardForTraining(x)
        var accumulated = try norm.zeroGradients(inputShape: shape)
        var streamed = Tensor.zeros(shape)

        let clock = ContinuousClock()
        var tBackward: [Double] = [], tAccumulate: [Double] = [], tForward: [Double] = [], tStream: [Double] = []
        var sink: Float = 0
        for _ in 0..<(repetitions + 2) {  // two warm-up rounds
            tStream.append(ms(clock.measure { stream(x, dy, into: &streamed) }))
            var g: LayerNorm.Gradients?
            tBackward.append(ms(try clock.measure {
                g = try norm.backward(outputGradient: dy, input: x, statistics: statistics)
            }))
            sink += g!.bias.scalars[0]
            tAccumulate.append(ms(try clock.measure {
                try norm.backward(outputGradient: dy, input: x, statistics: statistics, accumulatingInto: &accumulated)
            }))
            tForward.append(ms(try clock.measure { sink += try norm.forwardForTraining(x).output.scalars[0] }))
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

    private static func ms(_ d: Duration) -> Double {
        Double(d.components.seconds) * 1e3 + Double(d.components.attoseconds) / 1e15
    }

    private static func median<C: Collection<Double>>(_ values: C) -> Double {
        let s = values.sorted()
        return s.isEmpty ? .nan : s[s.count / 2]
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
        print(try BackwardBenchmark.run(batch: batch, seq: seq, dim: dim, repetitions: repetitions, seed: seed).report)
    }
}
