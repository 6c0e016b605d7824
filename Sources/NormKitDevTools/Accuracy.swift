import ArgumentParser
import NormKit
import NormKitCLISupport
import NormKitTesting

/// `normkit-dev accuracy`: NormKit's error on every catalogued hard row, against float64
/// (forward, or with `--backward` the three gradients).
struct Accuracy: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Error of LayerNorm (or, with --backward, its gradients) against float64 on the catalogued hard rows."
    )

    // Unconditional: `--dims -1` and `--seeds -1` are values, refused with their range.
    @Option(parsing: .unconditional, help: "Feature dimensions to check, comma-separated (default: 768; with --backward 1,3,17,768,4099).")
    var dims: String?
    @Option(parsing: .unconditional, help: "Seeds per row kind, 1...\(Accuracy.maxSeeds) (default: 20; with --backward 10; not with --fused).") var seeds: Int?
    @Flag(help: "Check the backward pass: dx (per row), dweight and dbias, with random dy and with dy = x̂.")
    var backward = false
    @Flag(help: "Check RMSNorm instead: forward, dx and dweight on the RMSNorm rows, at every instruction set (default dims 1,3,17,768,4096,4099; seeds 5).")
    var rms = false
    @Flag(help: "Check the fused residual add of both norms against a float64 norm of the float32 sum (default dims 1,3,17,768,4099).")
    var fused = false

    /// The most seeds per row kind `--seeds` takes.
    static let maxSeeds = 10_000

    func validate() throws {
        let modes = [(backward, "--backward"), (rms, "--rms"), (fused, "--fused")].filter(\.0).map(\.1)
        if modes.count > 1 {
            throw ValidationError("\(modes.joined(separator: ", ")) are different checks; give one (run the command once per check)")
        }
        if let seeds { _ = try CommandInput.integer(seeds, flag: "--seeds", in: 1...Self.maxSeeds) }
        if fused && seeds != nil { throw ValidationError("--fused checks 5 fixed rows per stream; it takes no --seeds") }
        // The rows of each dim, their gradients and float64 references, per element of
        // the dim: peak RSS less the process's own measured 38 (forward), 128 (--backward),
        // 80 (--rms) and 288 (--fused: five rows of x, h, their sum, three outputs and
        // three references) bytes at --dims 500000; admitted with a margin.
        let perElement = fused ? 384 : backward ? 192 : rms ? 128 : 64
        for dim in try parsedDims() {
            try CommandInput.checkFitsInMemory(elements: dim, bytesPerElement: perElement, what: "--dims \(dim)")
        }
    }

    private func parsedDims() throws -> [Int] {
        try CommandInput.integerList(dims ?? (rms ? "1,3,17,768,4096,4099" : backward || fused ? "1,3,17,768,4099" : "768"),
                                     flag: "--dims", minimum: 1, example: "768,1024")
    }

    func run() throws {
        let dimList = try parsedDims()
        if fused {
            try FusedAccuracy.table(dims: dimList).forEach { print($0) }
            return
        }
        if rms {
            try RMSAccuracy.table(dims: dimList, seeds: self.seeds ?? 5).forEach { print($0) }
            return
        }
        let seeds = self.seeds ?? (backward ? 10 : 20)
        if backward {
            try BackwardAccuracy.table(dims: dimList, seeds: seeds).lines.forEach { print($0) }
            return
        }
        print("max over \(seeds) seeds of max_row |y - y64| / max(1, max |y64|); bound 1e-6")
        var header = "row".padded(to: 28)
        for d in dimList { header += "dim \(d)".padded(to: 14) }
        print(header)
        var worst = 0.0
        for kind in Reference.HardRow.allCases {
            var line = kind.rawValue.padded(to: 28)
            for dim in dimList {
                let norm = try LayerNorm(dim: dim)
                var err = 0.0
                for seed in 0..<UInt64(seeds) {
                    let x = try Tensor(shape: [1, dim], scalars: kind.values(dim: dim, seed: seed))
                    let y = try norm(x)
                    err = max(err, Reference.maxRowError(y, expected: try Reference.layerNormDouble(x)))
                }
                worst = max(worst, err)
                line += sci(err).padded(to: 14)
            }
            print(line)
        }
        print("worst: \(sci(worst))")
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
        var header = "row".padded(to: 28)
        for d in dims { header += "dim \(d)".padded(to: 12) }
        lines.append(header + "   (dy random | dy = x̂)")
        var worst = 0.0
        for kind in Reference.HardRow.allCases {
            var line = kind.rawValue.padded(to: 28)
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
                line += sci(eRandom).padded(to: 12)
                aligned += sci(eAligned).padded(to: 12)
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
