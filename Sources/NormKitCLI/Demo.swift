import ArgumentParser
import NormKit
import NormKitCLISupport

/// `normkit demo`: LayerNorm over GPT-2-like activations, checked against a float64
/// computation of the same rows (the shipped command does not link NormKitTesting; the
/// full reference and its hard rows are `normkit-dev accuracy`).
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Normalise seeded GPT-2-like activations and compare with the float64 reference."
    )

    // Unconditional parsing: `--batch -1` is a value (refused as negative), not a flag.
    @Option(parsing: .unconditional, help: "Batch size.") var batch = 2
    @Option(parsing: .unconditional, help: "Sequence length.") var seq = 64
    @Option(parsing: .unconditional, help: "Feature dimension (GPT-2 small: 768).") var dim = 768
    @Option(parsing: .unconditional, help: "Random seed (0 ... 2^64-1).") var seed: String = "42"

    func validate() throws {
        guard batch >= 0 else { throw ValidationError("--batch must be >= 0, got \(batch)") }
        guard seq >= 0 else { throw ValidationError("--seq must be >= 0, got \(seq)") }
        guard dim >= 1 else { throw ValidationError("--dim must be >= 1, got \(dim)") }
        _ = try CommandInput.seed(seed)
        // Before anything is allocated: x, y (Float, twice while a timed call replaces it),
        // weight and bias, and the float64 reference: 28 bytes per element (peak RSS
        // measured 25 at --dim 20000000), rounded up to 32.
        let what = "--batch \(batch) --seq \(seq) --dim \(dim)"
        let elements = try CommandInput.elementCount([batch, seq, dim], what: what)
        try CommandInput.checkFitsInMemory(elements: max(elements, dim), bytesPerElement: 32, what: what)
    }

    func run() throws {
        let seed = try CommandInput.seed(self.seed)
        let x = Activations.gpt2Like(batch: batch, seq: seq, dim: dim, seed: seed)
        let norm = try LayerNorm(dim: dim)
        print("NormKit demo: LayerNorm(dim: \(dim), eps: \(norm.eps)) over GPT-2-like activations \(x.shape), seed \(seed)")
        print("(unit noise plus a few huge feature dimensions, as in GPT-2's residual stream)")
        print("kernels: \(InstructionSet.current) (this CPU supports \(InstructionSet.supported.map(\.rawValue).joined(separator: ", ")); NORMKIT_ISA overrides)\n")

        // Warm up once, then time a few calls and keep the median.
        var y = try norm(x)
        var times: [Double] = []
        for _ in 0..<9 {
            times.append(try seconds { () throws(NormKitError) in y = try norm(x) })
        }
        times.sort()
        let error = Self.maxErrorAgainstDouble(x, y, dim: dim, eps: Double(norm.eps))

        let rows = x.scalarCount / dim
        let show = Array(Set([0, 1, rows / 2, rows - 1].filter { $0 >= 0 && $0 < rows })).sorted()
        print("position       mean before   std before    mean after    std after")
        for r in show {
            let before = Stats(x.scalars[(r * dim)..<((r + 1) * dim)])
            let after = Stats(y.scalars[(r * dim)..<((r + 1) * dim)])
            let b = r / max(seq, 1), s = r % max(seq, 1)
            print("[\(b), \(s)]".padded(to: 12), fmt(before.mean), fmt(before.std), fmt(after.mean), fmt(after.std))
        }
        print("")
        print("max error vs float64 reference: \(sci(error)) (relative to max(1, max |y|) per row; bound 1e-6)")
        let median = times[times.count / 2]
        print("time per call: \(micros(median)) us median of \(times.count) (\(rows) rows x \(dim))")
    }

    private func fmt(_ v: Double) -> String { (" " + sci(v)).padded(to: 14) }

    /// NormKit's accuracy measure for a layer with weight 1 and bias 0: per row, the
    /// largest |y - exact| over max(1, max |exact|), with `exact` the two-pass float64
    /// LayerNorm of the row (exact to far below 1e-6 on these activations).
    static func maxErrorAgainstDouble(_ x: Tensor, _ y: Tensor, dim: Int, eps: Double) -> Double {
        let xs = x.scalars, ys = y.scalars
        var worst = 0.0
        for start in stride(from: 0, to: xs.count, by: dim) {
            let row = xs[start..<(start + dim)]
            let mean = row.reduce(0.0) { $0 + Double($1) } / Double(dim)
            let variance = row.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(dim)
            let rstd = 1 / (variance + eps).squareRoot()
            let exact = row.map { (Double($0) - mean) * rstd }
            let scale = exact.reduce(1.0) { max($0, abs($1)) }
            for (i, e) in exact.enumerated() { worst = max(worst, abs(Double(ys[start + i]) - e) / scale) }
        }
        return worst
    }
}

/// Mean and (biased) standard deviation of a slice, in Double.
struct Stats {
    var mean: Double
    var std: Double
    init(_ values: ArraySlice<Float>) {
        let n = Double(max(values.count, 1))
        mean = values.reduce(0.0) { $0 + Double($1) } / n
        let m = mean
        std = (values.reduce(0.0) { $0 + (Double($1) - m) * (Double($1) - m) } / n).squareRoot()
    }
}

/// Microseconds of a duration in seconds, with two decimals.
func micros(_ seconds: Double) -> String {
    String((seconds * 1e6 * 100).rounded() / 100)
}
