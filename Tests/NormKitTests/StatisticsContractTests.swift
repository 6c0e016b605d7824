// One contract for hand-made statistics and gradient shapes across the norms (issue 19,
// "Consistency"): RMSNorm's rrms follows LayerNorm's rstd, statistics of zero-size
// shapes are accepted in any dimension order, and zeroGradients checks the shape the
// layer's backward would check.
import NormKit
import NormKitTesting
import Testing

@Suite("Statistics and gradient shapes: one contract for every norm")
struct StatisticsContractTests {
    /// An rrms forward never makes (NaN, ±inf, 0, negative) gives that row a NaN input
    /// gradient and a NaN weight gradient, leaving the other row's bits alone, as
    /// LayerNorm's rstd does; extreme finite values give finite gradients, and the
    /// largest double (whose cube overflows) the exact gradient of the row.
    @Test(arguments: InstructionSet.supported)
    func rmsHandMadeStatistics(level: InstructionSet) throws {
        try InstructionSet.with(level) {
            let dim = 17
            var norm = try RMSNorm(dim: dim)
            norm.weight = Tensor.randomNormal([dim], mean: 1, standardDeviation: 0.2, seed: 8)
            let x = Tensor.randomNormal([2, dim], mean: 1, standardDeviation: 3, seed: 5)
            let dy = Tensor.randomNormal([2, dim], seed: 6)
            let (_, real) = try norm.forwardForTraining(x)
            let good = try norm.backward(outputGradient: dy, input: x, statistics: real)
            let r0 = real.reciprocalRootMeanSquares[0]
            for bad in [Double.nan, .infinity, -.infinity, 0, -0.0, -1, -.leastNonzeroMagnitude] {
                let s = try RMSNorm.Statistics(inputShape: [2, dim], reciprocalRootMeanSquares: [r0, bad])
                let g = try norm.backward(outputGradient: dy, input: x, statistics: s)
                let rowIsNaN = g.input.scalars[dim...].allSatisfy { $0.isNaN }
                let weightIsNaN = g.weight.scalars.allSatisfy { $0.isNaN }
                #expect(rowIsNaN, "\(level) rrms \(bad): \(g.input.scalars[dim...].prefix(3))")
                #expect(weightIsNaN, "\(level) rrms \(bad): dweight")
                #expect(g.input.scalars[..<dim].elementsEqual(good.input.scalars[..<dim]) {
                    $0.bitPattern == $1.bitPattern
                }, "\(level) rrms \(bad): row 0 changed")
            }
            let expected = try Reference.rmsNormBackwardDouble(outputGradient: dy, input: x, weight: norm.weight,
                                                               eps: norm.eps)
            for extreme in [Double.greatestFiniteMagnitude, 1e300, 1e100, 1e-300, .leastNonzeroMagnitude] {
                let s = try RMSNorm.Statistics(inputShape: [2, dim], reciprocalRootMeanSquares: [extreme, extreme])
                let g = try norm.backward(outputGradient: dy, input: x, statistics: s)
                let finite = g.input.scalars.allSatisfy { $0.isFinite }
                #expect(finite, "\(level) rrms \(extreme): \(g.input.scalars.prefix(3))")
                if extreme == .greatestFiniteMagnitude {
                    #expect(Reference.maxRowError(g.input, expected: expected.input) <= 1e-5, "\(level): \(g.input.scalars.prefix(3))")
                }
            }
        }
    }

    /// Statistics of a zero-size shape are valid whatever the order of its dimensions,
    /// for both norms, with no values (there are no rows).
    @Test func zeroSizeShapesInAnyOrder() throws {
        for shape in [[Int.max, Int.max, 0], [0, Int.max, Int.max], [Int.max, 0, Int.max], [3, 0], [0]] {
            let l = try LayerNorm.Statistics(inputShape: shape, means: [], reciprocalStandardDeviations: [])
            let r = try RMSNorm.Statistics(inputShape: shape, reciprocalRootMeanSquares: [])
            #expect(l.rowCount == 0 && r.rowCount == 0, "\(shape)")
        }
        #expect(throws: NormKitError.self) { try RMSNorm.Statistics(inputShape: [Int.max, Int.max, 2], reciprocalRootMeanSquares: []) }
        #expect(throws: NormKitError.self) {
            try LayerNorm.Statistics(inputShape: [Int.max, Int.max, 2], means: [], reciprocalStandardDeviations: [])
        }
    }

    /// zeroGradients refuses a shape backward would refuse (a last dimension that is not
    /// `dim`), with backward's error, before allocating; a valid one gives zeros.
    @Test func zeroGradientsChecksTheShape() throws {
        for shape in [[3, 5], [768, 3], [5], [0, 5]] {
            #expect(throws: NormKitError.inputShapeMismatch(expectedLastDimension: 768, actual: shape)) {
                try LayerNorm(dim: 768).zeroGradients(inputShape: shape)
            }
            #expect(throws: NormKitError.inputShapeMismatch(expectedLastDimension: 768, actual: shape)) {
                try RMSNorm(dim: 768).zeroGradients(inputShape: shape)
            }
        }
        #expect(throws: NormKitError.emptyShape) { try RMSNorm(dim: 4).zeroGradients(inputShape: []) }
        #expect(throws: NormKitError.shapeOverflow(shape: [Int.max, Int.max, 4])) {
            try LayerNorm(dim: 4).zeroGradients(inputShape: [Int.max, Int.max, 4])
        }
        let g = try RMSNorm(dim: 4).zeroGradients(inputShape: [2, 3, 4])
        #expect(g.input.shape == [2, 3, 4] && g.input.scalars.allSatisfy { $0 == 0 })
        let empty = try LayerNorm(dim: 4).zeroGradients(inputShape: [0, 4])
        #expect(empty.input.shape == [0, 4])
    }
}
