import Dispatch
@testable import NormKit
import NormKitTesting
import Testing

/// The backward accuracy bound of the training issue: |got - expected| / max(1, max|expected|),
/// per row for the input gradient and over the whole tensor for weight and bias.
let backwardBound = 1e-5

/// NormKit's gradients against the float64 reference: (input, weight, bias) errors.
func backwardErrors(
    _ norm: LayerNorm, _ x: Tensor, _ dy: Tensor
) throws -> (input: Double, weight: Double, bias: Double) {
    let (y, statistics) = try norm.forwardForTraining(x)
    #expect(y == (try norm(x)))
    let got = try norm.backward(outputGradient: dy, input: x, statistics: statistics)
    let expected = try Reference.layerNormBackwardDouble(
        outputGradient: dy, input: x, weight: norm.elementwiseAffine ? norm.weight : nil, eps: norm.eps)
    #expect(got.input.shape == x.shape)
    return (Reference.maxRowError(got.input, expected: expected.input),
            norm.elementwiseAffine ? Reference.maxError(got.weight, expected: expected.weight) : 0,
            norm.usesBias ? Reference.maxError(got.bias, expected: expected.bias) : 0)
}

func expectWithinBound(_ e: (input: Double, weight: Double, bias: Double), _ what: String) {
    #expect(e.input <= backwardBound, "\(what): input gradient error \(e.input)")
    #expect(e.weight <= backwardBound, "\(what): weight gradient error \(e.weight)")
    #expect(e.bias <= backwardBound, "\(what): bias gradient error \(e.bias)")
}

/// A layer with seeded random weight and bias.
func randomAffineLayer(dim: Int, seed: UInt64) throws -> LayerNorm {
    var norm = try LayerNorm(dim: dim)
    norm.weight = Tensor.randomNormal([dim], mean: 1, standardDeviation: 0.5, seed: seed)
    norm.bias = Tensor.randomNormal([dim], standardDeviation: 0.2, seed: seed &+ 1)
    return norm
}

@Suite("LayerNorm backward against finite differences")
struct BackwardFiniteDifferenceTests {
    /// L(x, w, b) = Σ dy ⊙ layerNorm(x; w, b) in Double; its central differences
    /// against the analytic gradients (Reference's, and NormKit's).
    @Test(arguments: [1, 2, 3, 5, 17])
    func gradientsMatchCentralDifferences(dim: Int) throws {
        let rows = 3
        let x = Tensor.randomNormal([rows, dim], mean: 0.5, standardDeviation: 2, seed: UInt64(dim))
        let dy = Tensor.randomNormal([rows, dim], seed: UInt64(dim) &+ 100)
        let norm = try randomAffineLayer(dim: dim, seed: 7)
        let eps = 1e-5
        let xs = x.scalars.map(Double.init), dys = dy.scalars.map(Double.init)
        let ws = norm.weight.scalars.map(Double.init), bs = norm.bias.scalars.map(Double.init)
        func loss(_ x: [Double], _ w: [Double], _ b: [Double]) -> Double {
            let y = Reference.layerNormDouble(x, dim: dim, weight: w, bias: b, eps: eps)
            return zip(y, dys).reduce(0) { $0 + $1.0 * $1.1 }
        }
        func difference(_ values: [Double], _ i: Int, _ f: ([Double]) -> Double) -> Double {
            let h = 1e-6 * max(1, abs(values[i]))
            var plus = values, minus = values
            plus[i] += h
            minus[i] -= h
            return (f(plus) - f(minus)) / (2 * h)
        }
        let fdInput = xs.indices.map { i in difference(xs, i) { loss($0, ws, bs) } }
        let fdWeight = ws.indices.map { i in difference(ws, i) { loss(xs, $0, bs) } }
        let fdBias = bs.indices.map { i in difference(bs, i) { loss(xs, ws, $0) } }

        // The reference's analytic gradients: to finite-difference precision.
        let reference = try Reference.layerNormBackwardDouble(
            outputGradient: dy, input: x, weight: norm.weight, eps: norm.eps)
        func relative(_ a: [Double], _ b: [Double]) -> Double {
            let scale = max(1, b.map(abs).max() ?? 0)
            return zip(a, b).map { abs($0 - $1) / scale }.max() ?? 0
        }
        #expect(relative(reference.input, fdInput) < 1e-7, "dim \(dim)")
        #expect(relative(reference.weight, fdWeight) < 1e-7, "dim \(dim)")
        #expect(relative(reference.bias, fdBias) < 1e-7, "dim \(dim)")

        // NormKit's: within the float bound.
        let (_, statistics) = try norm.forwardForTraining(x)
        let got = try norm.backward(outputGradient: dy, input: x, statistics: statistics)
        #expect(relative(got.input.scalars.map(Double.init), fdInput) < backwardBound, "dim \(dim)")
        #expect(relative(got.weight.scalars.map(Double.init), fdWeight) < backwardBound, "dim \(dim)")
        #expect(relative(got.bias.scalars.map(Double.init), fdBias) < backwardBound, "dim \(dim)")
    }

    /// The finite-difference check can fail: a gradient missing the x̂·mean(g·x̂)
    /// term (a classic LayerNorm backward bug) is far off.
    @Test func finiteDifferencesCatchAMissingTerm() throws {
        let dim = 5
        let x = Tensor.randomNormal([1, dim], seed: 1)
        let dy = Tensor.randomNormal([1, dim], seed: 2)
        let xs = x.scalars.map(Double.init), dys = dy.scalars.map(Double.init)
        let (mean, rstd) = Reference.statistics(xs[...], eps: 1e-5)
        let g = dys
        let a = g.reduce(0, +) / Double(dim)
        let wrong = g.map { rstd * ($0 - a) }
        let h = 1e-6
        var worst = 0.0
        for i in 0..<dim {
            var plus = xs, minus = xs
            plus[i] += h
            minus[i] -= h
            let lp = zip(Reference.layerNormDouble(plus, dim: dim), dys).reduce(0) { $0 + $1.0 * $1.1 }
            let lm = zip(Reference.layerNormDouble(minus, dim: dim), dys).reduce(0) { $0 + $1.0 * $1.1 }
            worst = max(worst, abs((lp - lm) / (2 * h) - wrong[i]))
        }
        _ = mean
        #expect(worst > 1e-2)
    }
}

@Suite("LayerNorm backward against the float64 reference")
struct BackwardReferenceTests {
    @Test(arguments: [1, 3, 17, 768, 4099])
    func dimensions(dim: Int) throws {
        let x = Tensor.randomNormal([5, dim], mean: 0.3, standardDeviation: 2, seed: UInt64(dim))
        let dy = Tensor.randomNormal([5, dim], seed: UInt64(dim) &+ 1)
        expectWithinBound(try backwardErrors(try LayerNorm(dim: dim), x, dy), "dim \(dim)")
        expectWithinBound(try backwardErrors(try randomAffineLayer(dim: dim, seed: 3), x, dy), "dim \(dim), affine")
    }

    @Test func dimensionOneHasExactlyZeroWeightAndInputGradient() throws {
        let norm = try randomAffineLayer(dim: 1, seed: 5)
        let x = Tensor.randomNormal([300, 1], standardDeviation: 100, seed: 1)
        let dy = Tensor.randomNormal([300, 1], seed: 2)
        let (_, statistics) = try norm.forwardForTraining(x)
        let got = try norm.backward(outputGradient: dy, input: x, statistics: statistics)
        #expect(got.weight.scalars == [0])
        #expect(got.input.scalars.allSatisfy { $0 == 0 })
        let expectedBias = dy.scalars.reduce(0.0) { $0 + Double($1) }
        #expect(abs(Double(got.bias.scalars[0]) - expectedBias) <= 1e-6 * max(1, abs(expectedBias)))
    }

    @Test(arguments: [[768], [3, 768], [2, 5, 768], [2, 3, 4, 768]])
    func ranks(shape: [Int]) throws {
        let x = Tensor.randomNormal(shape, seed: UInt64(shape.count))
        let dy = Tensor.randomNormal(shape, seed: 99)
        expectWithinBound(try backwardErrors(try randomAffineLayer(dim: 768, seed: 1), x, dy), "shape \(shape)")
    }

    /// [8, 1024, 768]: dweight and dbias sum 8192 rows over 128 blocks. Under a sanitizer
    /// a smaller tensor still split over the pool (`Sanitizer.gpt2Shape`).
    @Test func gpt2Shape() throws {
        let shape = Sanitizer.gpt2Shape
        let x = Tensor.randomNormal(shape, standardDeviation: 3, seed: 2024)
        let dy = Tensor.randomNormal(shape, standardDeviation: 0.01, seed: 2025)
        expectWithinBound(try backwardErrors(try randomAffineLayer(dim: 768, seed: 11), x, dy), "\(shape)")
    }

    @Test(arguments: HardRows.names)
    func hardRows(name: String) throws {
        for dim in [1, 3, 17, 768, 4099] {
            let x = try Tensor(shape: [1, dim], scalars: HardRows.make(name, dim: dim))
            let dy = Tensor.randomNormal([1, dim], seed: 17)
            expectWithinBound(try backwardErrors(try LayerNorm(dim: dim), x, dy), "\(name), dim \(dim)")
            expectWithinBound(try backwardErrors(try randomAffineLayer(dim: dim, seed: 3), x, dy),
                              "\(name), dim \(dim), affine")
        }
    }

    /// Every hard row in one batch (several blocks' worth), so dweight and dbias add
    /// rows of wildly different x̂ and the rows share blocks.
    @Test func hardRowsInOneBatch() throws {
        let dim = 768
        var values: [Float] = []
        for copy in 0..<5 {
            for name in HardRows.names { values += HardRows.make(name, dim: dim, seed: UInt64(copy)) }
        }
        let rows = values.count / dim
        let x = try Tensor(shape: [rows, dim], scalars: values)
        let dy = Tensor.randomNormal([rows, dim], seed: 5)
        expectWithinBound(try backwardErrors(try randomAffineLayer(dim: dim, seed: 8), x, dy), "all hard rows")
    }

    /// Gradients aligned with the output (dy = y, the gradient of Σy²/2) make
    /// g - mean(g) - x̂·mean(g·x̂) cancel; on rows with a small spread float rounding and
    /// the saved statistics' error are then amplified by rstd. The kernel must notice
    /// and recompute those rows in Double.
    @Test(arguments: ["100 + 0.01*randn", "1e6 + randn", "constant", "1e-30*randn", "randn"])
    func cancellingGradients(name: String) throws {
        for dim in [3, 17, 768, 4099] {
            let base = HardRows.make(name, dim: dim)
            // Spread 0.03 (rstd ~ 33): the worst place between eps and unit variance.
            let x = try Tensor(shape: [1, dim], scalars: base.map { name == "randn" ? 0.03 * $0 : $0 })
            // dy = x̂ (the output of a plain layer): g = x̂ exactly for the plain layer,
            // w ⊙ x̂ (partly cancelling) for the affine one.
            let dy = try LayerNorm(dim: dim)(x)
            for norm in [try LayerNorm(dim: dim), try randomAffineLayer(dim: dim, seed: 2)] {
                expectWithinBound(try backwardErrors(norm, x, dy), "\(name), dim \(dim), dy = x̂")
            }
        }
    }

    @Test func fallbackIsTakenOnlyWhenNeeded() throws {
        let dim = 768
        let norm = try LayerNorm(dim: dim)
        // Random rows and gradients: never.
        let x = Tensor.randomNormal([256, dim], seed: 1)
        let dy = Tensor.randomNormal([256, dim], seed: 2)
        #expect(try fallbackCount(norm, x, dy) == 0)
        // A small spread with dy = x̂: always.
        let small = Tensor.randomNormal([4, dim], standardDeviation: 0.03, seed: 3)
        #expect(try fallbackCount(norm, small, try norm(small)) == 4)
        // dy correlated with x̂ but not cancelling (dy = x̂ + noise) at a long row:
        // mean(g·x̂) is large, but nothing cancels, so no row falls back (the bound
        // must use max|x̂| ~ 4, not its worst case sqrt(n - 1) = 64), and the result
        // is still within the bound.
        let long = try LayerNorm(dim: 4099)
        let xl = Tensor.randomNormal([8, 4099], seed: 4)
        let noise = Tensor.randomNormal([8, 4099], seed: 5).scalars
        let dyl = try Tensor(shape: [8, 4099], scalars: zip(try long(xl).scalars, noise).map { $0 + $1 })
        #expect(try fallbackCount(long, xl, dyl) == 0)
        expectWithinBound(try backwardErrors(long, xl, dyl), "dy = x̂ + noise")
    }

    /// Rows on both sides of the fast path's gate (|mean|·rstd <= 16, rstd in
    /// [2^-30, 2^30]) and on its edges: the fast path (where β·x and γ cancel by up to
    /// 16x) and the careful path must both stay within the bound, and random gradients
    /// must not need the Double fallback on either side.
    @Test(arguments: [768, 4099])
    func bothSidesOfTheFastPathGate(dim: Int) throws {
        let norm = try randomAffineLayer(dim: dim, seed: 12)
        for meanRatio: Float in [0, 1, 8, 15.9, 16.1, 40, 1000] {
            for spread: Float in [0x1p-29, 0.03, 1, 0x1p29, 0x1p31] {
                let base = Tensor.randomNormal([2, dim], seed: UInt64(dim) &+ UInt64(meanRatio * 10)).scalars
                let x = try Tensor(shape: [2, dim], scalars: base.map { meanRatio * spread + spread * $0 })
                let dy = Tensor.randomNormal([2, dim], seed: 3)
                let what = "dim \(dim), mean \(meanRatio) std, std \(spread)"
                expectWithinBound(try backwardErrors(norm, x, dy), what)
                #expect(try fallbackCount(norm, x, dy) == 0, "\(what): random dy took the fallback")
                // dy = x̂ + noise: correlated with x̂ (large c) but not cancelling.
                let aligned = try LayerNorm(dim: dim)(x).scalars
                let dyc = try Tensor(shape: [2, dim], scalars: zip(aligned, dy.scalars).map { $0 + 0.5 * $1 })
                expectWithinBound(try backwardErrors(norm, x, dyc), "\(what), dy = x̂ + noise")
            }
        }
    }

    /// Float overflow inside a row whose gradient is finite: on the fast path β = -r²·c
    /// overflows (dy ~ 1e25 on a spread of 1e-8 with eps 1e-30, r ~ 1e8: dx ~ 1e33); on
    /// the careful path dy·w overflows (dy ~ 1e37, w = 100, spread 1e10: dx ~ 1e29). Both
    /// must notice (an infinite max|t|) and recompute the row in Double.
    @Test func overflowInsideARowWithAFiniteGradient() throws {
        let dim = 768
        let tiny = try LayerNorm(dim: dim, eps: 1e-30)
        let xTiny = Tensor.randomNormal([2, dim], standardDeviation: 1e-8, seed: 1)
        let dyHuge = Tensor.randomNormal([2, dim], standardDeviation: 1e25, seed: 2)
        expectWithinBound(try backwardErrors(tiny, xTiny, dyHuge), "fast path, β overflows")
        var wide = try LayerNorm(dim: dim)
        wide.weight = Tensor.randomNormal([dim], mean: 100, standardDeviation: 1, seed: 3)
        let xWide = Tensor.randomNormal([2, dim], standardDeviation: 1e10, seed: 4)
        let dyHuger = Tensor.randomNormal([2, dim], standardDeviation: 1e37, seed: 5)
        expectWithinBound(try backwardErrors(wide, xWide, dyHuger), "careful path, dy·w overflows")
    }

    func fallbackCount(_ norm: LayerNorm, _ x: Tensor, _ dy: Tensor) throws -> Int {
        let (_, statistics) = try norm.forwardForTraining(x)
        var weightSums: [Double]? = [Double](repeating: 0, count: norm.dim)
        var biasSums: [Double]? = [Double](repeating: 0, count: norm.dim)
        var dx = Tensor.zeros(x.shape)
        let rows = x.scalarCount / norm.dim
        return dx.withUnsafeMutableBufferPointer { out in
            norm.runBackward(outputGradient: dy, input: x, statistics: statistics, rows: rows, dx: out,
                             accumulate: false, weightSums: &weightSums, biasSums: &biasSums)
        }
    }
}

@Suite("LayerNorm backward behaviour")
struct BackwardBehaviourTests {
    /// Blocks processed in any grouping and order (as threads would) give bitwise the
    /// same gradients.
    @Test func resultDoesNotDependOnHowBlocksAreScheduled() throws {
        let dim = 768, rows = 64 * 7 + 13
        let norm = try randomAffineLayer(dim: dim, seed: 4)
        let x = Tensor.randomNormal([rows, dim], standardDeviation: 2, seed: 1)
        let dy = Tensor.randomNormal([rows, dim], seed: 2)
        let (_, statistics) = try norm.forwardForTraining(x)
        func run(_ schedule: @escaping (Int, @escaping @Sendable (Range<Int>) -> Void) -> Void) -> (Tensor, [Double]?, [Double]?) {
            var weightSums: [Double]? = [Double](repeating: 0, count: dim)
            var biasSums: [Double]? = [Double](repeating: 0, count: dim)
            var dx = Tensor.zeros(x.shape)
            _ = dx.withUnsafeMutableBufferPointer { out in
                norm.runBackward(outputGradient: dy, input: x, statistics: statistics, rows: rows, dx: out,
                                 accumulate: false, weightSums: &weightSums, biasSums: &biasSums,
                                 forEachBlockRange: schedule)
            }
            return (dx, weightSums, biasSums)
        }
        let serial = run { count, body in body(0..<count) }
        let reversedSingles = run { count, body in for b in (0..<count).reversed() { body(b..<(b + 1)) } }
        let uneven = run { count, body in body(3..<count); body(0..<3) }
        let threads = run { count, body in
            DispatchQueue.concurrentPerform(iterations: count) { b in body(b..<(b + 1)) }
        }
        #expect(serial.0 == reversedSingles.0 && serial.1 == reversedSingles.1 && serial.2 == reversedSingles.2)
        #expect(serial.0 == uneven.0 && serial.1 == uneven.1 && serial.2 == uneven.2)
        #expect(serial.0 == threads.0 && serial.1 == threads.1 && serial.2 == threads.2)
        // And the public API agrees with the serial schedule.
        let got = try norm.backward(outputGradient: dy, input: x, statistics: statistics)
        #expect(got.input == serial.0)
        #expect(got.weight.scalars == serial.1!.map { Float($0) })
    }

    @Test func rowsAreIndependentAndNaNRowsStayNaN() throws {
        let dim = 17
        let norm = try randomAffineLayer(dim: dim, seed: 6)
        var xs = Tensor.randomNormal([3, dim], seed: 1).scalars
        xs[dim + 4] = .nan
        let x = try Tensor(shape: [3, dim], scalars: xs)
        let dy = Tensor.randomNormal([3, dim], seed: 2)
        let (_, statistics) = try norm.forwardForTraining(x)
        let got = try norm.backward(outputGradient: dy, input: x, statistics: statistics)
        #expect(got.input.scalars[dim..<(2 * dim)].allSatisfy { $0.isNaN })
        #expect(got.weight.scalars.allSatisfy { $0.isNaN })
        #expect(!got.bias.scalars.contains { $0.isNaN })
        // Rows 0 and 2 are what they are alone.
        for r in [0, 2] {
            let xr = try Tensor(shape: [1, dim], scalars: Array(xs[(r * dim)..<((r + 1) * dim)]))
            let dyr = try Tensor(shape: [1, dim], scalars: Array(dy.scalars[(r * dim)..<((r + 1) * dim)]))
            let (_, sr) = try norm.forwardForTraining(xr)
            let alone = try norm.backward(outputGradient: dyr, input: xr, statistics: sr)
            #expect(alone.input.scalars == Array(got.input.scalars[(r * dim)..<((r + 1) * dim)]))
        }
    }

    @Test func emptyBatch() throws {
        let norm = try LayerNorm(dim: 8)
        let x = Tensor.zeros([0, 8])
        let (y, statistics) = try norm.forwardForTraining(x)
        #expect(y.shape == [0, 8] && statistics.rowCount == 0)
        let got = try norm.backward(outputGradient: x, input: x, statistics: statistics)
        #expect(got.input.shape == [0, 8])
        #expect(got.weight == Tensor.zeros([8]) && got.bias == Tensor.zeros([8]))
    }

    @Test func layersWithoutAffineOrBias() throws {
        let dim = 17
        let x = Tensor.randomNormal([4, dim], seed: 1)
        let dy = Tensor.randomNormal([4, dim], seed: 2)
        let plain = try LayerNorm(dim: dim, elementwiseAffine: false)
        let e = try backwardErrors(plain, x, dy)
        #expect(e.input <= backwardBound)
        let (_, s) = try plain.forwardForTraining(x)
        let g = try plain.backward(outputGradient: dy, input: x, statistics: s)
        #expect(g.weight.shape == [0] && g.bias.shape == [0])

        var noBias = try LayerNorm(dim: dim, bias: false)
        noBias.weight = Tensor.randomNormal([dim], mean: 1, seed: 3)
        expectWithinBound(try backwardErrors(noBias, x, dy), "bias: false")
        let gb = try noBias.backward(outputGradient: dy, input: x, statistics: s)
        #expect(gb.weight.shape == [dim] && gb.bias.shape == [0])
    }

    @Test func accumulatingAddsToExistingGradients() throws {
        let dim = 768
        let norm = try randomAffineLayer(dim: dim, seed: 2)
        let x = Tensor.randomNormal([70, dim], seed: 1)
        let dy = Tensor.randomNormal([70, dim], seed: 2)
        let (_, statistics) = try norm.forwardForTraining(x)
        let fresh = try norm.backward(outputGradient: dy, input: x, statistics: statistics)
        var gradients = try norm.zeroGradients(inputShape: x.shape)
        try norm.backward(outputGradient: dy, input: x, statistics: statistics, accumulatingInto: &gradients)
        #expect(gradients == fresh)
        try norm.backward(outputGradient: dy, input: x, statistics: statistics, accumulatingInto: &gradients)
        let twice = try Reference.layerNormBackwardDouble(outputGradient: dy, input: x, weight: norm.weight)
        #expect(Reference.maxRowError(gradients.input, expected: twice.input.map { 2 * $0 }) <= backwardBound)
        #expect(Reference.maxError(gradients.weight, expected: twice.weight.map { 2 * $0 }) <= backwardBound)
        #expect(Reference.maxError(gradients.bias, expected: twice.bias.map { 2 * $0 }) <= backwardBound)
    }

    /// Accumulating into existing gradients on rows that take the Double fallback
    /// (dy = x̂ on a small spread) adds the exact gradient once.
    @Test func accumulatingWorksOnFallbackRows() throws {
        let dim = 768
        let norm = try LayerNorm(dim: dim)
        let x = Tensor.randomNormal([3, dim], standardDeviation: 0.03, seed: 3)
        let dy = try norm(x)
        let (_, statistics) = try norm.forwardForTraining(x)
        var gradients = try norm.zeroGradients(inputShape: x.shape)
        gradients.input = Tensor.randomNormal(x.shape, seed: 9)
        let before = gradients.input.scalars
        try norm.backward(outputGradient: dy, input: x, statistics: statistics, accumulatingInto: &gradients)
        let expected = try Reference.layerNormBackwardDouble(outputGradient: dy, input: x)
        let sum = zip(before, expected.input).map { Double($0) + $1 }
        #expect(Reference.maxRowError(gradients.input, expected: sum) <= backwardBound)
    }

    @Test func statisticsMatchTheReference() throws {
        let x = try Tensor(shape: [2, 768], scalars: HardRows.make("1e6 + randn", dim: 768)
            + HardRows.make("randn", dim: 768))
        let (_, statistics) = try LayerNorm(dim: 768).forwardForTraining(x)
        #expect(statistics.inputShape == [2, 768] && statistics.rowCount == 2)
        #expect(statistics.mean.shape == [2, 1] && statistics.rstd.shape == [2, 1])
        let xs = x.scalars.map(Double.init)
        for r in 0..<2 {
            let (mean, rstd) = Reference.statistics(xs[(r * 768)..<((r + 1) * 768)], eps: Double(Float(1e-5)))
            // The mean to well under a float ulp of 1e6 (0.06): x̂ is rebuilt from it.
            #expect(abs(statistics.means[r] - mean) <= 1e-6 / rstd)
            #expect(abs(statistics.reciprocalStandardDeviations[r] / rstd - 1) <= 1e-6)
        }
    }

    @Test func badInputsThrow() throws {
        let norm = try LayerNorm(dim: 4)
        let x = Tensor.randomNormal([3, 4], seed: 1)
        let (_, statistics) = try norm.forwardForTraining(x)
        #expect(throws: NormKitError.shapeMismatch(name: "outputGradient", expected: [3, 4], actual: [3, 5])) {
            try norm.backward(outputGradient: Tensor.zeros([3, 5]), input: x, statistics: statistics)
        }
        let (_, other) = try norm.forwardForTraining(Tensor.zeros([2, 4]))
        #expect(throws: NormKitError.shapeMismatch(name: "statistics.inputShape", expected: [3, 4], actual: [2, 4])) {
            try norm.backward(outputGradient: x, input: x, statistics: other)
        }
        #expect(throws: NormKitError.inputShapeMismatch(expectedLastDimension: 4, actual: [3, 5])) {
            try norm.backward(outputGradient: Tensor.zeros([3, 5]), input: Tensor.zeros([3, 5]), statistics: statistics)
        }
        var wrongWeight = norm
        wrongWeight.weight = Tensor.zeros([5])
        #expect(throws: NormKitError.parameterShapeMismatch(name: "weight", expected: [4], actual: [5])) {
            try wrongWeight.backward(outputGradient: x, input: x, statistics: statistics)
        }
        var gradients = try norm.zeroGradients(inputShape: [3, 4])
        gradients.bias = Tensor.zeros([3])
        let before = gradients
        #expect(throws: NormKitError.shapeMismatch(name: "gradients.bias", expected: [4], actual: [3])) {
            try norm.backward(outputGradient: x, input: x, statistics: statistics, accumulatingInto: &gradients)
        }
        #expect(gradients == before)
        #expect(throws: NormKitError.self) {
            try LayerNorm.Statistics(inputShape: [3, 4], means: [0, 0], reciprocalStandardDeviations: [1, 1, 1])
        }
        let rebuilt = try LayerNorm.Statistics(
            inputShape: [3, 4], means: statistics.means,
            reciprocalStandardDeviations: statistics.reciprocalStandardDeviations)
        #expect(rebuilt == statistics)
    }
}
