// Invariants of LayerNorm, checked on seeded random inputs from every RowFamily.
//
// Each property states its tolerance and where it comes from. The only accuracy fact
// used is the forward contract (docs/numerics.md): per row, every output is within
// 1e-6·max(1, max|y|) of the exact value. A property comparing two NormKit outputs
// therefore allows 2e-6 of that scale, plus whatever the property itself changes
// exactly (the rounding of a transformed input, the eps term), computed per case.
//
// A failure prints the case's seed and the command that replays it (RowGenerator.swift).
import NormKit
import NormKitTesting
import Testing

/// The unit roundoff of Float, 2^-24.
private let u = 0x1p-24

@Suite("Properties", .tags(.property))
struct PropertyTests {
    /// Makes a `[rows, dim]` tensor from the generator: rows from random families.
    private static func batch(
        _ g: inout RowGenerator, rows: Int, dim: Int, eps: Float = 1e-5,
        families: [RowFamily] = RowFamily.allCases
    ) throws -> (Tensor, [RowFamily]) {
        var scalars: [Float] = []
        var used: [RowFamily] = []
        for _ in 0..<rows {
            let f = g.rng.pick(families)
            used.append(f)
            scalars += g.row(f, dim: dim, eps: eps)
        }
        return (try Tensor(shape: [rows, dim], scalars: scalars), used)
    }

    // MARK: accuracy (the foundation's contract, fuzzed)

    /// Every family, random eps, weight and bias: within 1e-6 of the float64 reference.
    @Test func matchesReferenceOnEveryRowFamily() {
        PropertyRun.check("matchesReferenceOnEveryRowFamily", cases: 400) { g, check in
            let dim = g.dim()
            let eps = g.eps()
            var norm = try LayerNorm(dim: dim, eps: eps)
            if g.rng.bool() {
                norm.weight = try Tensor(shape: [dim], scalars: g.weight(dim: dim))
                norm.bias = try Tensor(shape: [dim], scalars: g.bias(dim: dim))
            }
            let (x, families) = try Self.batch(&g, rows: g.rng.int(1...3), dim: dim, eps: eps)
            let y = try norm(x)
            let expected = try Reference.layerNormDouble(x, weight: norm.weight, bias: norm.bias, eps: eps)
            let error = Reference.maxRowError(y, expected: expected)
            check.require(error <= forwardBound,
                          "dim \(dim), eps \(eps), families \(families): error \(error) > \(forwardBound)")
        }
    }

    // MARK: weight 1, bias 0: mean 0, variance v/(v + eps)

    /// With weight 1 and bias 0, each output row has mean 0 and variance v/(v + eps),
    /// v the row's biased variance. The statistics of y are taken in Double from the
    /// float outputs. Tolerance, with S = max(1, max|y|): every y_i is off by at most
    /// δ = 1e-6·S, so |mean(y)| ≤ δ and |var(y) - v/(v+eps)| ≤ 2·sqrt(v/(v+eps))·δ + δ²
    /// ≤ 2δ + δ². v comes from the test's own two-pass Double code, not from Reference.
    @Test func unitAffineRowsHaveZeroMeanAndShrunkVariance() {
        PropertyRun.check("unitAffineRowsHaveZeroMeanAndShrunkVariance", cases: 300) { g, check in
            let dim = g.dim()
            let eps = g.eps()
            let norm = try LayerNorm(dim: dim, eps: eps)
            let (x, families) = try Self.batch(&g, rows: g.rng.int(1...3), dim: dim, eps: eps)
            let y = try norm(x).scalars
            for r in 0..<families.count {
                let xr = rowSlice(x.scalars, r, dim: dim), yr = rowSlice(y, r, dim: dim)
                let where_ = "row \(r) (\(families[r])), dim \(dim), eps \(eps)"
                check.require(yr.allSatisfy(\.isFinite), "\(where_): non-finite output")
                let s = max(1, Double(yr.map(\.magnitude).max() ?? 0))
                let delta = forwardBound * s
                let v = doubleMeanAndVariance(xr).variance
                let target = v / (v + Double(eps))
                let (mean, variance) = doubleMeanAndVariance(yr)
                check.require(abs(mean) <= delta * (1 + 1e-9),
                              "\(where_): mean \(mean), bound \(delta)")
                check.require(abs(variance - target) <= 2 * delta + delta * delta,
                              "\(where_): variance \(variance), expected v/(v+eps) = \(target), bound \(2 * delta)")
            }
        }
    }

    // MARK: LN(a·x + c) = LN(x)

    /// The exact form of scale-and-shift invariance: LN_{eps·a²}(a·x + c) = LN_eps(x)
    /// holds with no eps effect at all. With x small integers, a = 2^p and c an
    /// integer multiple of a, a·x + c and eps·a² are exact in Float, so the two
    /// computations see exactly related inputs and may differ only by their own
    /// errors: 2e-6·S. c reaches 2^23 times a while x spans as little as {-1, 0, 1},
    /// the regime where one-pass and naive float LayerNorms lose every digit.
    @Test func scaleAndShiftInvarianceExact() {
        PropertyRun.check("scaleAndShiftInvarianceExact", cases: 300) { g, check in
            let (dim, k, c, p, _, eps0, eps1, x, shifted) = try g.exactScaleShiftCase()
            let w = g.rng.bool() ? g.weight(dim: dim) : [Float](repeating: 1, count: dim)
            let b = g.rng.bool() ? g.bias(dim: dim) : [Float](repeating: 0, count: dim)
            var n0 = try LayerNorm(dim: dim, eps: eps0)
            var n1 = try LayerNorm(dim: dim, eps: eps1)
            n0.weight = try Tensor(shape: [dim], scalars: w); n1.weight = n0.weight
            n0.bias = try Tensor(shape: [dim], scalars: b); n1.bias = n0.bias
            let y0 = try n0(x).scalars, y1 = try n1(shifted).scalars
            let s = max(1, Double((y0 + y1).map(\.magnitude).max() ?? 0))
            let diff = zip(y0, y1).map { abs(Double($0) - Double($1)) }.max() ?? 0
            check.require(diff <= 2 * forwardBound * s * (1 + 1e-5),
                          "dim \(dim), k \(k), c \(c), a 2^\(p), eps \(eps0)→\(eps1): max diff \(diff), bound \(2 * forwardBound * s)")
        }
    }

    /// LN(a·x + c) = LN(x) for any a > 0, up to the rounding of a·x + c and the eps
    /// effect, both computed per case:
    ///
    /// * Rounding: x' = fl(a·x + c) moves each element by at most Δ (its Double and Float
    ///   roundings, plus 2^-150 for subnormal results). Moving every element by Δ moves
    ///   x - mean by 2Δ and the standard deviation σ' by Δ, so y moves by at most
    ///   3Δ/σ' relative to S = max(1, max|y|); we allow 4Δ/σ'.
    /// * eps: LN_eps(a·x + c) = LN_{eps/a²}(x) exactly, and LN_eps(x) differs from that by
    ///   |w_i·(x_i - m)|·|1/sqrt(v + eps/a²) - 1/sqrt(v + eps)| per element.
    ///
    /// Tolerance = 2e-6·S (the two computations' own errors) + 4Δ/σ'·S + eps effect.
    /// A second comparison, against LN_{eps/a²}(x), has no eps effect beyond the
    /// rounding of eps/a² itself (≤ u·eps/a² on the variance, so ≤ u/2 relative).
    @Test func scaleAndShiftInvarianceUpToEps() {
        PropertyRun.check("scaleAndShiftInvarianceUpToEps", cases: 300) { g, check in
            let dim = g.dim()
            let eps = g.eps()
            let family = g.family()
            let xs = g.row(family, dim: dim, eps: eps)
            let (m, v) = doubleMeanAndVariance(xs)
            let sigma = v.squareRoot()
            let a = g.rng.decades(-2, 2)
            // Sometimes cancel the row's own mean, then shift by up to 100 spreads.
            let spread = sigma > 0 ? a * sigma : a
            let c = (g.rng.bool() ? -a * m : 0) + g.rng.sign() * spread * g.rng.decades(-3, 2)
            let exactShifted = xs.map { a * Double($0) + c }
            guard let maxShifted = exactShifted.map(\.magnitude).max(), maxShifted < 1e37,
                  xs.allSatisfy({ abs(Double($0)) * a < 1e37 }) else { return }  // would overflow: vacuous
            let shifted = exactShifted.map { Float($0) }
            let w = g.rng.bool() ? g.weight(dim: dim) : [Float](repeating: 1, count: dim)
            var n0 = try LayerNorm(dim: dim, eps: eps)
            n0.weight = try Tensor(shape: [dim], scalars: w)
            let y0 = try n0(try Tensor(shape: [dim], scalars: xs)).scalars
            let y1 = try n0(try Tensor(shape: [dim], scalars: shifted)).scalars
            let where_ = "\(family), dim \(dim), eps \(eps), a \(a), c \(c)"
            if sigma == 0 {
                // A constant row stays constant: both are exactly the bias (zeros).
                check.require(bitwiseEqual(y0, y1), "\(where_): constant row changed")
                return
            }
            let sigma1 = doubleMeanAndVariance(shifted).variance.squareRoot()
            guard sigma1 > 0 else { return }  // rounding made x' constant: nothing to compare
            var delta = 0x1p-150
            for (i, x) in xs.enumerated() {
                let e = u * Double(shifted[i].magnitude) + 0x1p-52 * (abs(a * Double(x)) + abs(c)) + 0x1p-150
                delta = max(delta, e)
            }
            let s = max(1, Double((y0 + y1).map(\.magnitude).max() ?? 0))
            let rounding = 4 * delta / sigma1
            let r0 = 1 / (v + Double(eps)).squareRoot(), r1 = 1 / (v + Double(eps) / (a * a)).squareRoot()
            var epsEffect = 0.0
            for (i, x) in xs.enumerated() {
                epsEffect = max(epsEffect, abs(Double(w[i]) * (Double(x) - m)) * abs(r1 - r0))
            }
            let diff = zip(y0, y1).map { abs(Double($0) - Double($1)) }.max() ?? 0
            let bound = (2 * forwardBound + rounding) * s + epsEffect
            check.require(diff <= bound * (1 + 1e-6),
                          "\(where_): max diff \(diff), bound \(bound) (rounding \(rounding), eps effect \(epsEffect))")

            // Without the eps effect: LN_eps(x') against LN_{eps/a²}(x).
            let epsOverA2 = Float(Double(eps) / (a * a))
            guard epsOverA2.isNormal && epsOverA2.isFinite else { return }
            var n2 = try LayerNorm(dim: dim, eps: epsOverA2)
            n2.weight = n0.weight
            let y2 = try n2(try Tensor(shape: [dim], scalars: xs)).scalars
            let s2 = max(1, Double((y2 + y1).map(\.magnitude).max() ?? 0))
            let diff2 = zip(y2, y1).map { abs(Double($0) - Double($1)) }.max() ?? 0
            let bound2 = (2 * forwardBound + rounding + u) * s2
            check.require(diff2 <= bound2 * (1 + 1e-6),
                          "\(where_), eps/a² = \(epsOverA2): max diff \(diff2), bound \(bound2)")
        }
    }

    // MARK: permutation equivariance

    /// Permuting the features of x, weight and bias alike permutes the output. Not
    /// bitwise (BLAS sums in a different order), so 2e-6·S; a constant row, whose
    /// output is exactly the bias, and a non-finite row, all NaN, must match bitwise.
    @Test func permutingFeaturesPermutesTheOutput() {
        PropertyRun.check("permutingFeaturesPermutesTheOutput", cases: 300) { g, check in
            let dim = max(2, g.dim())
            let rows = g.rng.int(1...3)
            var norm = try LayerNorm(dim: dim, eps: g.eps())
            let w = g.weight(dim: dim), b = g.bias(dim: dim)
            norm.weight = try Tensor(shape: [dim], scalars: w)
            norm.bias = try Tensor(shape: [dim], scalars: b)
            var xs: [Float] = []
            var families: [String] = []
            for _ in 0..<rows {
                if g.rng.unit() < 0.1 {
                    xs += g.nonFiniteRow(dim: dim); families.append("non-finite")
                } else {
                    let f = g.family()
                    xs += g.row(f, dim: dim, eps: norm.eps); families.append(f.rawValue)
                }
            }
            let pi = g.rng.permutation(dim)
            var permuted = norm
            permuted.weight = try Tensor(shape: [dim], scalars: pi.map { w[$0] })
            permuted.bias = try Tensor(shape: [dim], scalars: pi.map { b[$0] })
            let xp = (0..<rows).flatMap { r in pi.map { xs[r * dim + $0] } }
            let y = try norm(try Tensor(shape: [rows, dim], scalars: xs)).scalars
            let yp = try permuted(try Tensor(shape: [rows, dim], scalars: xp)).scalars
            for r in 0..<rows {
                let expected = pi.map { y[r * dim + $0] }
                let actual = Array(rowSlice(yp, r, dim: dim))
                let where_ = "row \(r) (\(families[r])), dim \(dim)"
                let xr = rowSlice(xs, r, dim: dim)
                if xr.contains(where: { !$0.isFinite }) || Set(xr).count == 1 {
                    check.require(bitwiseEqual(expected, actual), "\(where_): not bitwise equal")
                    continue
                }
                let s = max(1, Double((expected + actual).map(\.magnitude).max() ?? 0))
                let diff = zip(expected, actual).map { abs(Double($0) - Double($1)) }.max() ?? 0
                check.require(diff <= 2 * forwardBound * s * (1 + 1e-5),
                              "\(where_): max diff \(diff), bound \(2 * forwardBound * s)")
            }
        }
    }

    // MARK: rows are independent

    /// A row's output does not depend on its neighbours, its position, the batch's
    /// shape or which forward entry point ran it: bitwise. Rows come from every family
    /// plus NaN/inf rows; odd dims put rows at every alignment.
    @Test func rowsAreIndependentBitwise() {
        PropertyRun.check("rowsAreIndependentBitwise", cases: 200) { g, check in
            let dim = g.dim()
            let rows = g.rng.int(2...9)
            var norm = try LayerNorm(dim: dim, eps: g.eps())
            if g.rng.bool() {
                norm.weight = try Tensor(shape: [dim], scalars: g.weight(dim: dim))
                norm.bias = try Tensor(shape: [dim], scalars: g.bias(dim: dim))
            }
            var rowList: [[Float]] = []
            for _ in 0..<rows {
                rowList.append(g.rng.unit() < 0.15 ? g.nonFiniteRow(dim: dim)
                                                   : g.row(g.family(), dim: dim, eps: norm.eps))
            }
            let x = try Tensor(shape: [rows, dim], scalars: rowList.flatMap { $0 })
            let y = try norm(x).scalars

            for r in 0..<rows {
                let alone = try norm(try Tensor(shape: [dim], scalars: rowList[r])).scalars
                check.require(bitwiseEqual(alone, rowSlice(y, r, dim: dim)), "row \(r) alone differs, dim \(dim)")
            }
            let reversed = try norm(try Tensor(shape: [rows, dim], scalars: rowList.reversed().flatMap { $0 })).scalars
            for r in 0..<rows {
                check.require(bitwiseEqual(rowSlice(reversed, rows - 1 - r, dim: dim), rowSlice(y, r, dim: dim)),
                              "row \(r) differs in reversed batch, dim \(dim)")
            }
            // The same row between hostile neighbours (NaN, infinity, huge values), at an
            // offset of one extra row so it lands at another alignment.
            let target = g.rng.int(0...(rows - 1))
            let hostile = [Float](repeating: .nan, count: dim) + [Float](repeating: .greatestFiniteMagnitude, count: dim)
                + rowList[target] + [Float](repeating: -.infinity, count: dim)
            let h = try norm(try Tensor(shape: [4, dim], scalars: hostile)).scalars
            check.require(bitwiseEqual(rowSlice(h, 2, dim: dim), rowSlice(y, target, dim: dim)),
                          "row \(target) differs between hostile neighbours, dim \(dim)")
            for shape in [[1, rows, dim], [rows, 1, dim]] {
                let z = try norm(try x.reshaped(to: shape)).scalars
                check.require(bitwiseEqual(z, y), "shape \(shape) differs, dim \(dim)")
            }
            var out = Tensor(shape: [rows, dim], repeating: .nan)
            try norm.forward(x, into: &out)
            check.require(bitwiseEqual(out.scalars, y), "forward(_:into:) differs, dim \(dim)")
        }
    }
}
