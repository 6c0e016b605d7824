import Testing
import NormKit
import NormKitTesting

@Suite("GroupNorm")
struct GroupNormTests {
    @Test func badConfigurationsThrow() {
        #expect(throws: NormKitError.invalidArgument(name: "groups", expected: "a divisor of channels (320)", actual: "33")) {
            _ = try GroupNorm(groups: 33, channels: 320)
        }
        #expect(throws: NormKitError.invalidArgument(name: "groups", expected: "at least 1", actual: "0")) {
            _ = try GroupNorm(groups: 0, channels: 320)
        }
        #expect(throws: NormKitError.invalidDimension(0)) { _ = try GroupNorm(groups: 1, channels: 0) }
        #expect(throws: NormKitError.invalidEpsilon(0)) { _ = try GroupNorm(groups: 1, channels: 4, eps: 0) }
    }

    @Test func wrongChannelAxisThrows() throws {
        let norm = try GroupNorm(groups: 2, channels: 4)
        // Channels last (a [N, H, W, C] tensor) is refused: axis 1 must be the channels.
        #expect(throws: NormKitError.invalidArgument(name: "input", expected: "shape [N, 4, *spatial] (channels first)",
                                                     actual: "shape [1, 3, 3, 4]")) {
            _ = try norm(Tensor.zeros([1, 3, 3, 4]))
        }
        #expect(throws: NormKitError.self) { _ = try norm(Tensor.zeros([4])) }
        var wrong = norm
        wrong.weight = Tensor.zeros([5])
        #expect(throws: NormKitError.parameterShapeMismatch(name: "weight", expected: [4], actual: [5])) {
            _ = try wrong(Tensor.zeros([1, 4, 2]))
        }
    }

    /// [N, C] inputs (no spatial axes) and empty batches work as PyTorch's do.
    @Test func noSpatialAxesAndEmptyInputs() throws {
        let norm = try GroupNorm(groups: 2, channels: 6)
        let x = Tensor.randomNormal([5, 6], seed: 1)
        let y = try norm(x)
        let expected = try Reference.groupNormDouble(x, groups: 2)
        #expect(Reference.maxRowError(try y.reshaped(to: [10, 3]), expected: expected) <= 1e-6)
        #expect(try norm(Tensor.zeros([0, 6, 4])).shape == [0, 6, 4])
        let (empty, statistics) = try norm.forwardForTraining(Tensor.zeros([2, 6, 0]))
        #expect(empty.shape == [2, 6, 0] && statistics.rowCount == 4)
    }

    /// A group holding NaN comes out NaN; the other groups are unaffected.
    @Test func nanStaysInItsGroup() throws {
        let norm = try GroupNorm(groups: 2, channels: 4)
        var values = Tensor.randomNormal([1, 4, 3], seed: 2).scalars
        values[1] = .nan
        let x = try Tensor(shape: [1, 4, 3], scalars: values)
        let y = try norm(x).scalars
        #expect(y[0..<6].allSatisfy { $0.isNaN })
        #expect(y[6..<12].allSatisfy { $0.isFinite })
        let expected = try Reference.groupNormDouble(x, groups: 2)
        for i in 6..<12 { #expect(abs(Double(y[i]) - expected[i]) <= 1e-6) }
    }

    /// Groups at float's limits: a spread near 1e-30 and near 1e30 go through the Double path.
    @Test func extremeSpreads() throws {
        let norm = try GroupNorm(groups: 2, channels: 4)
        for scale: Float in [1e-30, 1e30, 0x1p-128] {
            let x = Tensor.randomNormal([2, 4, 17], standardDeviation: scale, seed: 3)
            let expected = try Reference.groupNormDouble(x, groups: 2)
            #expect(Reference.maxRowError(try norm(x).reshaped(to: [4, 34]), expected: expected) <= 1e-6, "scale \(scale)")
        }
    }

    @Test func statisticsAreShapedNByGroups() throws {
        let norm = try GroupNorm(groups: 4, channels: 8)
        let (_, statistics) = try norm.forwardForTraining(Tensor.randomNormal([3, 8, 5], seed: 4))
        #expect(statistics.mean.shape == [3, 4] && statistics.rstd.shape == [3, 4])
        let rebuilt = try GroupNorm.Statistics(inputShape: [3, 8, 5], groups: 4, means: statistics.means,
                                               reciprocalStandardDeviations: statistics.reciprocalStandardDeviations)
        #expect(rebuilt == statistics)
        #expect(throws: NormKitError.self) {
            _ = try GroupNorm.Statistics(inputShape: [3, 8, 5], groups: 4, means: [0], reciprocalStandardDeviations: [0])
        }
    }
}

@Suite("Normalised shape over several axes")
struct NormalizedShapeTests {
    @Test func layerNormOverTwoAxesIsLayerNormOverTheirProduct() throws {
        var two = try LayerNorm(normalizedShape: [6, 8])
        two.weight = Tensor.randomNormal([6, 8], seed: 1)
        two.bias = Tensor.randomNormal([6, 8], seed: 2)
        var one = try LayerNorm(dim: 48)
        one.weight = try two.weight.reshaped(to: [48])
        one.bias = try two.bias.reshaped(to: [48])
        let x = Tensor.randomNormal([3, 5, 6, 8], seed: 3)
        #expect(try two(x).scalars == one(x.reshaped(to: [15, 48])).scalars)
        #expect(two.dim == 48 && two.normalizedShape == [6, 8])
        let (_, statistics) = try two.forwardForTraining(x)
        #expect(statistics.rowCount == 15 && statistics.mean.shape == [3, 5, 1, 1])
        let saved = try LayerNorm.Statistics(inputShape: x.shape, normalizedRank: 2, means: statistics.means,
                                             reciprocalStandardDeviations: statistics.reciprocalStandardDeviations)
        #expect(saved == statistics)
        #expect(throws: NormKitError.self) {  // one-axis rows: 90 of them, not 15
            _ = try LayerNorm.Statistics(inputShape: x.shape, means: statistics.means,
                                         reciprocalStandardDeviations: statistics.reciprocalStandardDeviations)
        }
    }

    @Test func wrongTrailingDimensionsThrow() throws {
        let norm = try RMSNorm(normalizedShape: [4, 8])
        #expect(throws: NormKitError.shapeMismatch(name: "input's trailing dimensions", expected: [4, 8], actual: [2, 8, 4])) {
            _ = try norm(Tensor.zeros([2, 8, 4]))
        }
        #expect(throws: NormKitError.self) { _ = try norm(Tensor.zeros([8])) }
        #expect(throws: NormKitError.emptyShape) { _ = try LayerNorm(normalizedShape: []) }
        #expect(throws: NormKitError.invalidDimension(0)) { _ = try RMSNorm(normalizedShape: [4, 0]) }
        var wrong = try LayerNorm(normalizedShape: [2, 3])
        wrong.weight = Tensor.ones([6])
        #expect(throws: NormKitError.parameterShapeMismatch(name: "weight", expected: [2, 3], actual: [6])) {
            _ = try wrong(Tensor.zeros([1, 2, 3]))
        }
    }
}
