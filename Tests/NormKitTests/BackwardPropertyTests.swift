// Invariants of LayerNorm's backward pass, checked on seeded random rows and output
// gradients (RowGenerator.swift; a failure prints the seed and the replay command).
//
// The only accuracy fact used is the backward contract (Normalization+Backward.swift,
// docs/numerics.md): per row, every element of the input gradient is within
// ε = 1e-5 of the exact gradient dx*, relative to S = max(1, max|dx*|) of that row;
// the weight and bias gradients are within ε relative to max(1, max|exact|) over the
// whole tensor. S is not known exactly, but max|dx*| <= max|dx| + ε·S, so
// S <= max(1, max|dx|)/(1 - ε): the tolerances below use that.
//
// With x̂ = (x - m)·r, r = 1/sqrt(v + eps), g = dy ⊙ w (per row of n elements):
//
//     dx = r·(g - mean(g) - x̂·mean(g·x̂))
//
// and the identities the properties rest on, all exact in real arithmetic:
//
//     Σ dx_i = r·(Σg - n·mean(g) - mean(g·x̂)·Σx̂) = 0                     (Σx̂ = 0)
//     Σ dx_i·x̂_i = r·n·c·(1 - Σx̂²/n) = r·n·c·eps/(v + eps),  c = mean(g·x̂)
//     dbias = Σ_rows dy,   both independent of x and w
//     LN_eps(a·x + c) = LN_{eps/a²}(x), so its input gradient is dx_{eps/a²}(x)/a.
import NormKit
import NormKitTesting
import Testing

/// Float's unit roundoff, 2^-24.
private let u = 0x1p-24

/// The kinds of output gradient the generator makes.
enum GradientFamily: String, CaseIterable, Sendable {
    case gaussian     // s·randn, s = 10^[-6, 6)
    case offset       // μ + s·randn, |μ| up to 100·s: mean(g) far from 0
    case alignedWithY // dy = s·y (+ tiny noise): g - mean(g) - x̂·c cancels (Double fallback)
    case constant     // one value: for weight 1, dx = 0
    case outlier      // randn with one element up to 10^6
    case integers     // small integers: sums exact in Float
    case sparse       // zeros but for a few elements
}

extension RowGenerator {
    mutating func gradientFamily() -> GradientFamily { rng.pick(GradientFamily.allCases) }

    /// One output-gradient row of `family`; `y` is the row's forward output (used by
    /// `.alignedWithY`).
    mutating func outputGradient(_ family: GradientFamily, dim n: Int, y: ArraySlice<Float>) -> [Float] {
        var row = [Float](repeating: 0, count: n)
        switch family {
        case .gaussian:
            let s = rng.decades(-6, 6)
            for i in 0..<n { row[i] = Float(s * rng.gaussian()) }
        case .offset:
            let s = rng.decades(-3, 3)
            let mu = rng.sign() * s * rng.decades(-1, 2)
            for i in 0..<n { row[i] = Float(mu + s * rng.gaussian()) }
        case .alignedWithY:
            let s = rng.decades(-3, 3)
            let noise = rng.bool() ? 0 : s * rng.decades(-7, -3)
            for (i, v) in y.enumerated() { row[i] = Float(s * Double(v) + noise * rng.gaussian()) }
        case .constant:
            let c = Float(rng.sign() * rng.decades(-3, 3))
            for i in 0..<n { row[i] = c }
        case .outlier:
            for i in 0..<n { row[i] = Float(rng.gaussian()) }
            row[rng.int(0...(n - 1))] = Float(rng.sign() * rng.decades(2, 6))
        case .integers:
            let k = 1 << rng.int(0...10)
            for i in 0..<n { row[i] = Float(rng.int(-k...k)) }
        case .sparse:
            for _ in 0..<rng.int(1...3) { row[rng.int(0...(n - 1))] = Float(rng.gaussian()) }
        }
        return row
    }
}

/// A layer with a random eps and, half the time, random weight and bias.
private func randomLayer(_ g: inout RowGenerator, dim: Int) throws -> LayerNorm {
    var norm = try LayerNorm(dim: dim, eps: g.eps())
    if g.rng.bool() {
        norm.weight = try Tensor(shape: [dim], scalars: g.weight(dim: dim))
        norm.bias = try Tensor(shape: [dim], scalars: g.bias(dim: dim))
    }
    return norm
}

/// Rows of random families and, per row, an output gradient of a random family.
private func batch(
    _ g: inout RowGenerator, _ norm: LayerNorm, rows: Int
) throws -> (x: Tensor, dy: Tensor, what: [String]) {
    let dim = norm.dim
    var xs: [Float] = [], what: [String] = []
    var families: [RowFamily] = []
    for _ in 0..<rows {
        let f = g.family()
        families.append(f)
        xs += g.row(f, dim: dim, eps: norm.eps)
    }
    let x = try Tensor(shape: [rows, dim], scalars: xs)
    let y = try norm(x).scalars
    var dys: [Float] = []
    for r in 0..<rows {
        let gf = g.gradientFamily()
        dys += g.outputGradient(gf, dim: dim, y: rowSlice(y, r, dim: dim))
        what.append("\(families[r])/\(gf)")
    }
    return (x, try Tensor(shape: [rows, dim], scalars: dys), what)
}

/// Fresh gradients through the public API.
private func gradients(_ norm: LayerNorm, _ x: Tensor, _ dy: Tensor) throws -> LayerNorm.Gradients {
    let (_, statistics) = try norm.forwardForTraining(x)
    return try norm.backward(outputGradient: dy, input: x, statistics: statistics)
}

/// Equal as numbers: NaN equals NaN, 0 equals -0.
private func sameValues(_ a: [Float], _ b: [Float]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) }
}

/// S = max(1, max|exact|) bounded from a computed row (see the file header).
private func contractScale(_ computed: some Sequence<Float>) -> Double {
    max(1, Double(computed.map(\.magnitude).max() ?? 0)) / (1 - backwardBound)
}

@Suite("Properties: backward", .tags(.property))
struct BackwardPropertyTests {
    // MARK: accuracy (the contract, fuzzed)

    /// Every row family, every gradient family, random eps, weight and bias: the input,
    /// weight and bias gradients are all within 1e-5 of the float64 reference (the
    /// contract, with no extra term for the weight gradient: K2 is fixed, see
    /// `BackwardReliabilityTests.weightGradientMeetsTheContractForALargeGradientAtASmallXHat`).
    @Test func backwardMatchesReferenceOnEveryRowFamily() {
        PropertyRun.check("backwardMatchesReferenceOnEveryRowFamily", cases: 300) { g, check in
            let dim = g.dim()
            let norm = try randomLayer(&g, dim: dim)
            let (x, dy, what) = try batch(&g, norm, rows: g.rng.int(1...3))
            let got = try gradients(norm, x, dy)
            let expected = try Reference.layerNormBackwardDouble(
                outputGradient: dy, input: x, weight: norm.weight, eps: norm.eps)
            let e = (Reference.maxRowError(got.input, expected: expected.input),
                     Reference.maxError(got.bias, expected: expected.bias),
                     Reference.maxError(got.weight, expected: expected.weight))
            let where_ = "dim \(dim), eps \(norm.eps), rows \(what)"
            check.require(e.0 <= backwardBound && e.1 <= backwardBound && e.2 <= backwardBound,
                          "\(where_): errors dx \(e.0), dbias \(e.1), dweight \(e.2)")
        }
    }

    // MARK: Σ dx = 0 and Σ dx·x̂ = r·n·c·eps/(v + eps)

    /// Each row of the input gradient sums to 0, and its x̂-moment is the eps term.
    ///
    /// Tolerances: every dx_i is within ε·S of dx*_i, so |Σ dx_i - Σ dx*_i| <= n·ε·S
    /// and |Σ dx_i·x̂_i - Σ dx*_i·x̂_i| <= ε·S·Σ|x̂_i|; the test's own Double sums add
    /// at most 1e-12 of the sums of magnitudes, and its Double mean's rounding (up to
    /// 4·2^-53·max|x|, which matters when the spread is far below |x|) moves x̂ by δ =
    /// r·that, so the moment by Σ|dx|·δ and the target by r·eps/(v+eps)·Σ|g|·δ. x̂, v, r and c come from the test's
    /// own two-pass Double code (not from Reference, not from NormKit's statistics).
    /// A gradient that drops the mean(g) term misses the first, one that drops the
    /// x̂·c term misses the second, whenever those terms are above ε·S.
    @Test func gradientRowsSumToZero() {
        PropertyRun.check("gradientRowsSumToZero", cases: 300) { g, check in
            let dim = g.dim()
            let norm = try randomLayer(&g, dim: dim)
            let (x, dy, what) = try batch(&g, norm, rows: g.rng.int(1...3))
            let dx = try gradients(norm, x, dy).input.scalars
            let w = norm.weight.scalars
            let n = Double(dim), eps = Double(norm.eps)
            for r in 0..<what.count {
                let xr = Array(rowSlice(x.scalars, r, dim: dim)), dyr = Array(rowSlice(dy.scalars, r, dim: dim))
                let dxr = Array(rowSlice(dx, r, dim: dim))
                let where_ = "row \(r) (\(what[r])), dim \(dim), eps \(norm.eps)"
                check.require(dxr.allSatisfy(\.isFinite), "\(where_): non-finite input gradient")
                let s = contractScale(dxr)
                let sum = dxr.reduce(0.0) { $0 + Double($1) }
                let sumMagnitude = dxr.reduce(0.0) { $0 + abs(Double($1)) }
                let sumBound = n * backwardBound * s + 1e-12 * sumMagnitude
                check.require(abs(sum) <= sumBound, "\(where_): Σdx = \(sum), bound \(sumBound)")

                let (m, v) = doubleMeanAndVariance(xr)
                let rstd = 1 / (v + eps).squareRoot()
                let xhat = xr.map { (Double($0) - m) * rstd }
                var c = 0.0
                for i in 0..<dim { c += Double(dyr[i]) * Double(w[i]) * xhat[i] }
                c /= n
                let target = rstd * n * c * eps / (v + eps)
                var moment = 0.0, momentMagnitude = 0.0, xhatMagnitude = 0.0, dxMagnitude = 0.0, gMagnitude = 0.0
                for i in 0..<dim {
                    moment += Double(dxr[i]) * xhat[i]
                    momentMagnitude += abs(Double(dxr[i]) * xhat[i])
                    xhatMagnitude += abs(xhat[i])
                    dxMagnitude += abs(Double(dxr[i]))
                    gMagnitude += abs(Double(dyr[i]) * Double(w[i]))
                }
                // The test's own m is off by up to 4·2^-53·max|x|, which moves every x̂_i
                // by δ = r·that: the moment by Σ|dx|·δ and c by mean|g|·δ.
                let delta = rstd * 4 * 0x1p-53 * Double(xr.map(\.magnitude).max() ?? 0)
                let ownError = dxMagnitude * delta + rstd * eps / (v + eps) * gMagnitude * delta
                let momentBound = backwardBound * s * xhatMagnitude + ownError + 1e-12 * (momentMagnitude + abs(target))
                check.require(abs(moment - target) <= momentBound,
                              "\(where_): Σdx·x̂ = \(moment), expected r·n·c·eps/(v+eps) = \(target), bound \(momentBound)")
            }
        }
    }

    // MARK: dbias = Σ_rows dy

    /// The bias gradient is the column sum of dy, and depends on nothing else.
    ///
    /// * Integer dy with |partial sums| < 2^24: every Float addition is exact, in any
    ///   order, so dbias is exactly the integer sum.
    /// * Any dy: whatever the order and grouping, a sum of R terms with each addition
    ///   rounded to Float (or better) is within γ_{R-1}·Σ|dy| of the exact sum
    ///   (γ_k = k·u/(1 - k·u), Higham, Accuracy and Stability, 4.2), and rounding the
    ///   result to Float adds at most u·|result|.
    /// * Another input x and another weight give the same bits.
    @Test func biasGradientIsTheSumOfOutputGradients() {
        PropertyRun.check("biasGradientIsTheSumOfOutputGradients", cases: 200) { g, check in
            let dim = g.dim(allowLarge: false)
            let rows = g.rng.pick([1, 2, 3, 63, 64, 65, 129, 200])
            var norm = try LayerNorm(dim: dim, eps: g.eps())
            norm.weight = try Tensor(shape: [dim], scalars: g.weight(dim: dim))
            let integers = g.rng.bool()
            var dys: [Float] = []
            if integers {
                let k = max(1, (1 << 23) / rows)
                for _ in 0..<(rows * dim) { dys.append(Float(g.rng.int(-k...k))) }
            } else {
                for _ in 0..<rows { dys += g.outputGradient(.gaussian, dim: dim, y: []) }
            }
            let dy = try Tensor(shape: [rows, dim], scalars: dys)
            let x1 = try Tensor(shape: [rows, dim], scalars: (0..<rows).flatMap { _ in g.row(g.family(), dim: dim) })
            let x2 = try Tensor(shape: [rows, dim], scalars: (0..<rows).flatMap { _ in g.row(.gaussian, dim: dim) })
            let db = try gradients(norm, x1, dy).bias.scalars
            var other = norm
            other.weight = try Tensor(shape: [dim], scalars: g.weight(dim: dim))
            check.require(bitwiseEqual(try gradients(other, x2, dy).bias.scalars, db),
                          "dim \(dim), rows \(rows): dbias changed with x and weight")
            let gamma = Double(rows - 1) * u / (1 - Double(rows - 1) * u)
            for j in 0..<dim {
                var exact = 0.0, magnitude = 0.0
                for r in 0..<rows {
                    exact += Double(dys[r * dim + j])
                    magnitude += abs(Double(dys[r * dim + j]))
                }
                if integers {
                    check.require(Double(db[j]) == exact, "dim \(dim), rows \(rows), feature \(j): dbias \(db[j]), exact \(exact)")
                } else {
                    let bound = gamma * magnitude + u * (abs(exact) + gamma * magnitude)
                    check.require(abs(Double(db[j]) - exact) <= bound,
                                  "dim \(dim), rows \(rows), feature \(j): dbias \(db[j]), Σdy \(exact), bound \(bound)")
                }
            }
        }
    }

    // MARK: input gradient of a scaled input

    /// The exact form: x integers, a = 2^p, c an integer multiple of a, eps' = eps·a²,
    /// so a·x + c and eps' are exact in Float and LN_{eps'}(a·x + c) = LN_eps(x): the
    /// input gradient at a·x + c is exactly dx/a. Multiplying by a power of two is exact,
    /// so the two computed gradients may differ only by their own errors:
    /// |a·dx'_i - dx_i| <= ε·(S + a·S'). The bias gradient depends on dy alone and must
    /// be bitwise equal; the weight gradients (x̂ is the same) differ by at most
    /// ε·(Sw + Sw').
    @Test func scaledInputGivesScaledGradientExact() {
        PropertyRun.check("scaledInputGivesScaledGradientExact", cases: 300) { g, check in
            let (dim, k, c, p, a, eps0, eps1, x, shifted) = try g.exactScaleShiftCase()
            var n0 = try LayerNorm(dim: dim, eps: eps0)
            var n1 = try LayerNorm(dim: dim, eps: eps1)
            if g.rng.bool() { n0.weight = try Tensor(shape: [dim], scalars: g.weight(dim: dim)) }
            n1.weight = n0.weight
            let gf = g.gradientFamily()
            let dy = try Tensor(shape: [1, dim], scalars: g.outputGradient(gf, dim: dim, y: try n0(x).scalars[...]))
            let g0 = try gradients(n0, x, dy), g1 = try gradients(n1, shifted, dy)
            let where_ = "dim \(dim), k \(k), c \(c), a 2^\(p), eps \(eps0)→\(eps1), dy \(gf)"
            let dx0 = g0.input.scalars, dx1 = g1.input.scalars
            let bound = backwardBound * (contractScale(dx0) + a * contractScale(dx1))
            let diff = zip(dx0, dx1).map { abs(a * Double($1) - Double($0)) }.max() ?? 0
            check.require(diff <= bound, "\(where_): max |a·dx' - dx| = \(diff), bound \(bound)")
            check.require(bitwiseEqual(g0.bias.scalars, g1.bias.scalars), "\(where_): dbias differs")
            // Each weight gradient: the contract, nothing more.
            let wBound = backwardBound * (contractScale(g0.weight.scalars) + contractScale(g1.weight.scalars))
            for j in 0..<dim {
                let wDiff = abs(Double(g0.weight.scalars[j]) - Double(g1.weight.scalars[j]))
                if !(wDiff <= wBound) {
                    check.require(false, "\(where_): |dw'[\(j)] - dw[\(j)]| = \(wDiff), bound \(wBound)")
                    break
                }
            }
        }
    }

    /// Any scale a = m·2^q (m = 1…15, so a is not just a power of two) with the SAME
    /// eps: the input gradient at a·x + c is dx_{eps/a²}(x)/a, which differs from dx_eps(x)/a
    /// by the eps effect. Written as a function of r (with A_i = g_i - mean(g) and
    /// B_i = (x_i - m)·mean(g·(x - m)), neither depending on eps), dx_i = r·A_i - r³·B_i,
    /// so the effect is |f(r₂) - f(r)| with r = 1/sqrt(v + eps), r₂ = 1/sqrt(v + eps/a²),
    /// computed per element in Double. x are integers and |m·x + c/2^q| < 2^24, so a·x + c
    /// is exact in Float and there is no rounding of the input to account for.
    /// Tolerance: ε·(S + a·S') + eps effect (+ 1e-12 relative for the Double arithmetic).
    @Test func scaledInputGivesScaledGradientUpToEps() {
        PropertyRun.check("scaledInputGivesScaledGradientUpToEps", cases: 300) { g, check in
            let dim = g.dim()
            let k = 1 << g.rng.int(0...10)
            let m = g.rng.int(1...15), q = g.rng.int(-30...30)
            let ints = (0..<dim).map { _ in g.rng.int(-k...k) }
            let cInt = g.rng.int(-((1 << 23) - 16 * k)...((1 << 23) - 16 * k))
            let scale = Double(sign: .plus, exponent: q, significand: 1)
            let a = Double(m) * scale
            let eps = g.eps()
            var norm = try LayerNorm(dim: dim, eps: eps)
            if g.rng.bool() { norm.weight = try Tensor(shape: [dim], scalars: g.weight(dim: dim)) }
            let x = try Tensor(shape: [1, dim], scalars: ints.map { Float($0) })
            let shifted = try Tensor(shape: [1, dim], scalars: ints.map { Float(Double(m * $0 + cInt) * scale) })
            let gf = g.gradientFamily()
            let dy = try Tensor(shape: [1, dim], scalars: g.outputGradient(gf, dim: dim, y: try norm(x).scalars[...]))
            let dx0 = try gradients(norm, x, dy).input.scalars
            let dx1 = try gradients(norm, shifted, dy).input.scalars

            let xs = ints.map(Double.init), w = norm.weight.scalars.map(Double.init), dys = dy.scalars.map(Double.init)
            let (mean, v) = doubleMeanAndVariance(x.scalars)
            let n = Double(dim)
            let gs = (0..<dim).map { dys[$0] * w[$0] }
            let meanG = gs.reduce(0, +) / n
            var ctilde = 0.0
            for i in 0..<dim { ctilde += gs[i] * (xs[i] - mean) }
            ctilde /= n
            let r = 1 / (v + Double(eps)).squareRoot(), r2 = 1 / (v + Double(eps) / (a * a)).squareRoot()
            let where_ = "dim \(dim), k \(k), a = \(m)·2^\(q), c \(cInt)·2^\(q), eps \(eps), dy \(gf)"
            let base = backwardBound * (contractScale(dx0) + a * contractScale(dx1))
            for i in 0..<dim {
                let A = gs[i] - meanG, B = (xs[i] - mean) * ctilde
                let f1 = r * A - r * r * r * B, f2 = r2 * A - r2 * r2 * r2 * B
                let effect = abs(f2 - f1) + 1e-12 * (abs(f1) + abs(f2))
                let diff = abs(a * Double(dx1[i]) - Double(dx0[i]))
                if !(diff <= base + effect) {
                    check.require(false, "\(where_): element \(i): |a·dx' - dx| = \(diff), bound \(base) + eps effect \(effect)")
                    break
                }
            }
        }
    }

    // MARK: rows are independent

    /// A row's input gradient does not depend on its neighbours, its position (inside
    /// or across the 64-row blocks of the weight-gradient partial sums) or the batch's
    /// shape: bitwise. Rows include NaN/infinity in x or in dy, which make their own
    /// row's gradient non-finite and nothing else. Accumulating into zeros gives the
    /// fresh gradients' values (0 + (-0) is +0, so only the sign of a zero may differ).
    @Test func backwardRowsAreIndependentBitwise() {
        PropertyRun.check("backwardRowsAreIndependentBitwise", cases: 150) { g, check in
            let dim = g.dim()
            let norm = try randomLayer(&g, dim: dim)
            let rows = g.rng.int(2...6)
            var xRows: [[Float]] = [], dyRows: [[Float]] = []
            for _ in 0..<rows {
                let xr = g.rng.unit() < 0.15 ? g.nonFiniteRow(dim: dim) : g.row(g.family(), dim: dim, eps: norm.eps)
                let y = try norm(try Tensor(shape: [dim], scalars: xr)).scalars
                var dyr = g.outputGradient(g.gradientFamily(), dim: dim, y: y[...])
                if g.rng.unit() < 0.15 { dyr[g.rng.int(0...(dim - 1))] = g.rng.pick([Float.nan, .infinity, -.infinity]) }
                xRows.append(xr)
                dyRows.append(dyr)
            }
            let x = try Tensor(shape: [rows, dim], scalars: xRows.flatMap { $0 })
            let dy = try Tensor(shape: [rows, dim], scalars: dyRows.flatMap { $0 })
            let together = try gradients(norm, x, dy)
            let dx = together.input.scalars

            for r in 0..<rows {
                let alone = try gradients(norm, try Tensor(shape: [1, dim], scalars: xRows[r]),
                                          try Tensor(shape: [1, dim], scalars: dyRows[r]))
                check.require(bitwiseEqual(alone.input.scalars, rowSlice(dx, r, dim: dim)),
                              "row \(r) alone differs, dim \(dim)")
                let finite = xRows[r].allSatisfy(\.isFinite) && dyRows[r].allSatisfy(\.isFinite)
                check.require(finite == alone.input.scalars.allSatisfy(\.isFinite),
                              "row \(r): finite inputs \(finite), but the gradient's finiteness disagrees, dim \(dim)")
            }
            let reversed = try gradients(norm, try Tensor(shape: [rows, dim], scalars: xRows.reversed().flatMap { $0 }),
                                         try Tensor(shape: [rows, dim], scalars: dyRows.reversed().flatMap { $0 }))
            for r in 0..<rows {
                check.require(bitwiseEqual(rowSlice(reversed.input.scalars, rows - 1 - r, dim: dim), rowSlice(dx, r, dim: dim)),
                              "row \(r) differs in the reversed batch, dim \(dim)")
            }
            // The batch after `lead` filler rows (NaN rows half the time): it then sits
            // at another place in the 64-row blocks, possibly across a block boundary.
            let lead = dim > 1024 ? g.rng.int(1...3) : g.rng.int(1...130)
            let fillerX = g.rng.bool() ? [Float](repeating: .nan, count: dim) : g.row(.gaussian, dim: dim)
            let fillerDy = g.row(.gaussian, dim: dim)
            let bigX = try Tensor(shape: [lead + rows, dim], scalars: (0..<lead).flatMap { _ in fillerX } + x.scalars)
            let bigDy = try Tensor(shape: [lead + rows, dim], scalars: (0..<lead).flatMap { _ in fillerDy } + dy.scalars)
            let shifted = try gradients(norm, bigX, bigDy).input.scalars
            check.require(bitwiseEqual(shifted[(lead * dim)...], dx), "batch after \(lead) filler rows differs, dim \(dim)")
            let reshaped = try gradients(norm, try x.reshaped(to: [1, rows, dim]), try dy.reshaped(to: [1, rows, dim]))
            check.require(bitwiseEqual(reshaped.input.scalars, dx), "shape [1, \(rows), \(dim)] differs")

            let (_, statistics) = try norm.forwardForTraining(x)
            var accumulated = try norm.zeroGradients(inputShape: x.shape)
            try norm.backward(outputGradient: dy, input: x, statistics: statistics, accumulatingInto: &accumulated)
            check.require(sameValues(accumulated.input.scalars, dx), "accumulating into zeros differs (dx), dim \(dim)")
            check.require(sameValues(accumulated.weight.scalars, together.weight.scalars)
                          && sameValues(accumulated.bias.scalars, together.bias.scalars),
                          "accumulating into zeros differs (dweight/dbias), dim \(dim)")
        }
    }
}
