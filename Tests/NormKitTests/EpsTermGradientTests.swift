// Rows whose gradient g lies in the span the backward projects out (span(1, x̂) for
// LayerNorm, x for RMSNorm): what is left of dx is only the eps term, which the
// textbook formula buries under a cancellation of size r·|g| (docs/numerics.md,
// "Backward", "Where g lies in the span"). Every row at LayerNorm dim 2 and RMSNorm
// dim 1 is such a row; at any dim, so is a two-level row whose gradient is constant on
// each level. The expected values are closed forms, written here independently of the
// reference, and the reference is held to them too.
@testable import NormKit
import NormKitTesting
import Testing

/// A two-level LayerNorm row: `m1` copies of `a` then `n - m1` of `b`, gradient
/// `ga` on the first level and `gb` on the second (weight w1 on the first level, w2 on
/// the second). The exact dx: with Δ = a - b, D = m1·m2·Δ²/n, f = n·eps/(D + n·eps),
/// r = 1/sqrt(D/n + eps), dx = r·m2·(ga·w1 - gb·w2)/n·f on the first level and
/// -r·m1·(ga·w1 - gb·w2)/n·f on the second (the projection leaves nothing: h = 0).
struct TwoLevelRow: Sendable {
    var n: Int, m1: Int
    var a: Float, b: Float
    var ga: Float, gb: Float
    var w1: Float = 1, w2: Float = 1

    var x: [Float] { (0..<n).map { $0 < m1 ? a : b } }
    var dy: [Float] { (0..<n).map { $0 < m1 ? ga : gb } }
    var weight: [Float] { (0..<n).map { $0 < m1 ? w1 : w2 } }

    func exact(eps: Double) -> [Double] {
        let nd = Double(n), m2 = Double(n - m1), m1d = Double(m1)
        let delta = Double(a) - Double(b)
        let d = m1d * m2 * delta * delta / nd
        let f = nd * eps / (d + nd * eps)
        let r = 1 / (d / nd + eps).squareRoot()
        let dg = Double(ga) * Double(w1) - Double(gb) * Double(w2)
        return (0..<n).map { $0 < m1 ? r * m2 * dg / nd * f : -r * m1d * dg / nd * f }
    }
}

private func maxRowError(_ got: [Float], _ expected: [Double]) -> Double {
    let scale = max(1, expected.map(abs).max() ?? 0)
    return zip(got, expected).map { abs(Double($0) - $1) / scale }.max() ?? 0
}

@Suite("Backward: the eps term of rows in the projected span")
struct EpsTermGradientTests {
    static let twoLevelRows: [TwoLevelRow] = [
        // dim 2 (every row): mean -2e3, spread 4e3; dx about 1.
        TwoLevelRow(n: 2, m1: 1, a: 2e3, b: -6e3, ga: 1e16, gb: -3e15),
        TwoLevelRow(n: 2, m1: 1, a: 1e9, b: 3e9, ga: 1e33, gb: 0),
        TwoLevelRow(n: 2, m1: 1, a: 0.5, b: 70000.5, ga: 3e20, gb: 1e19, w1: 0.25, w2: 4),
        TwoLevelRow(n: 2, m1: 1, a: -1e-3, b: 1e-3, ga: 1, gb: 0),  // eps dominates: no cancellation
        // wider rows with two levels and a gradient constant on each
        TwoLevelRow(n: 3, m1: 2, a: 1e4, b: 0, ga: 1e17, gb: 0),
        TwoLevelRow(n: 5, m1: 3, a: 5e3, b: -7e3, ga: 2e16, gb: 5e15),
        TwoLevelRow(n: 17, m1: 1, a: 1e6, b: 0, ga: 1e22, gb: 0),
        TwoLevelRow(n: 768, m1: 384, a: 40000, b: 30000, ga: 3e16, gb: -3e16, w1: 2, w2: 0.5),
    ]

    /// LayerNorm: NormKit and the reference against the closed form, at every level,
    /// fresh and accumulating into zeros, alone and in a batch with an ordinary row.
    @Test(arguments: twoLevelRows.indices)
    func layerNormTwoLevelRows(_ index: Int) throws {
        let row = Self.twoLevelRows[index]
        let eps: Float = 1e-5
        var norm = try LayerNorm(dim: row.n, eps: eps)
        norm.weight = try Tensor(shape: [row.n], scalars: row.weight)
        let exact = row.exact(eps: Double(eps))
        let ordinary = Tensor.randomNormal([row.n], seed: 5).scalars
        let x = try Tensor(shape: [2, row.n], scalars: row.x + ordinary)
        let dy = try Tensor(shape: [2, row.n], scalars: row.dy + ordinary.reversed())
        let reference = try Reference.layerNormBackwardDouble(outputGradient: dy, input: x, weight: norm.weight, eps: eps)
        #expect(maxRowError(reference.input.prefix(row.n).map(Float.init), exact) <= 1e-6,
                "reference \(reference.input.prefix(4)) against \(exact.prefix(4))")
        for level in InstructionSet.supported {
            try InstructionSet.with(level) {
                let (_, statistics) = try norm.forwardForTraining(x)
                let g = try norm.backward(outputGradient: dy, input: x, statistics: statistics)
                var acc = try norm.zeroGradients(inputShape: [2, row.n])
                try norm.backward(outputGradient: dy, input: x, statistics: statistics, accumulatingInto: &acc)
                for (name, got) in [("fresh", g.input.scalars), ("accumulating", acc.input.scalars)] {
                    let e = maxRowError(Array(got.prefix(row.n)), exact)
                    #expect(e <= 1e-5, "\(level) \(name) dim \(row.n): \(got.prefix(4)) against \(exact.prefix(4)), error \(e)")
                    let other = Reference.maxRowError(try Tensor(shape: [row.n], scalars: Array(got.suffix(row.n))),
                                                      expected: Array(reference.input.suffix(row.n)))
                    #expect(other <= 1e-5, "\(level) \(name): the ordinary row")
                }
            }
        }
    }

    /// RMSNorm at dim 1: dx = g·eps·r³ with r = 1/sqrt(x² + eps), at every level,
    /// with and without the Gemma offset.
    @Test(arguments: [(-2e4, 5e20, 0), (3e5, 1e28, 1), (7e7, -3e33, 0), (1e-4, 2, 0)] as [(Float, Float, Float)])
    func rmsNormDimOne(x: Float, dy: Float, offset: Float) throws {
        let eps: Float = 1e-6
        var norm = try RMSNorm(dim: 1, eps: eps, weightOffset: offset)
        norm.weight = try Tensor(shape: [1], scalars: [offset == 0 ? 2 : 0.5])
        let g = Double(dy) * (Double(offset) + Double(norm.weight.scalars[0]))
        let xd = Double(x), r = 1 / (xd * xd + Double(eps)).squareRoot()
        let exact = [g * Double(eps) * r * r * r]
        try checkRMS(norm, x: [x], dy: [dy], exact: exact)
    }

    /// RMSNorm rows whose gradient is an exact multiple of x (λ a power of two): the
    /// projection leaves nothing, dx = r·λ·x·f with f = n·eps/(Σx² + n·eps).
    @Test(arguments: [([3e3, -1e3, 2e3], 0x1p42), ([1e5, 1e5, -2e5, 0, 5e4], 0x1p60),
                      (Array(repeating: 1e4, count: 768), 0x1p52)] as [([Float], Float)])
    func rmsNormParallelRows(x: [Float], lambda: Float) throws {
        let eps: Float = 1e-6, n = x.count
        let norm = try RMSNorm(dim: n, eps: eps)
        let q = x.reduce(0.0) { $0 + Double($1) * Double($1) }
        let r = 1 / (q / Double(n) + Double(eps)).squareRoot()
        let f = Double(n) * Double(eps) / (q + Double(n) * Double(eps))
        let exact = x.map { r * Double(lambda) * Double($0) * f }
        try checkRMS(norm, x: x, dy: x.map { $0 * lambda }, exact: exact)
    }

    private func checkRMS(_ norm: RMSNorm, x: [Float], dy: [Float], exact: [Double]) throws {
        let n = x.count
        let ordinary = Tensor.randomNormal([n], seed: 3).scalars
        let input = try Tensor(shape: [2, n], scalars: x + ordinary)
        let gradient = try Tensor(shape: [2, n], scalars: dy + ordinary.reversed())
        let reference = try Reference.rmsNormBackwardDouble(outputGradient: gradient, input: input, weight: norm.weight,
                                                            eps: norm.eps, weightOffset: norm.weightOffset)
        #expect(maxRowError(reference.input.prefix(n).map(Float.init), exact) <= 1e-6,
                "reference \(reference.input.prefix(3)) against \(exact.prefix(3))")
        for level in InstructionSet.supported {
            try InstructionSet.with(level) {
                let (_, statistics) = try norm.forwardForTraining(input)
                let g = try norm.backward(outputGradient: gradient, input: input, statistics: statistics)
                var acc = try norm.zeroGradients(inputShape: [2, n])
                try norm.backward(outputGradient: gradient, input: input, statistics: statistics, accumulatingInto: &acc)
                for (name, got) in [("fresh", g.input.scalars), ("accumulating", acc.input.scalars)] {
                    let e = maxRowError(Array(got.prefix(n)), exact)
                    #expect(e <= 1e-5, "\(level) \(name) dim \(n): \(got.prefix(3)) against \(exact.prefix(3)), error \(e)")
                    let other = Reference.maxRowError(try Tensor(shape: [n], scalars: Array(got.suffix(n))),
                                                      expected: Array(reference.input.suffix(n)))
                    #expect(other <= 1e-5, "\(level) \(name): the ordinary row")
                }
                #expect(Reference.maxError(g.weight, expected: reference.weight) <= 1e-5, "\(level): dweight")
            }
        }
    }
}
