import NormKit
import NormKitTesting
import Testing

@Suite("LayerNorm backward into caller-provided gradients")
struct BackwardIntoTests {
    @Test(arguments: [(true, true), (true, false), (false, false)])
    func intoMatchesFreshGradientsBitwise(affine: Bool, bias: Bool) throws {
        // 116,700 elements: three forward blocks of 109 rows, so 2 and 3 threads split.
        let dim = 300, rows = 64 * 6 + 5
        var norm = try LayerNorm(dim: dim, elementwiseAffine: affine, bias: bias)
        if affine { norm.weight = Tensor.randomNormal([dim], mean: 1, standardDeviation: 0.5, seed: 3) }
        let x = Tensor.randomNormal([rows, dim], mean: 0.2, standardDeviation: 2, seed: 1)
        let dy = Tensor.randomNormal([rows, dim], seed: 2)
        let (_, statistics) = try norm.forwardForTraining(x)
        let fresh = try norm.backward(outputGradient: dy, input: x, statistics: statistics)
        // Garbage in the buffers first: `into` overwrites every element.
        var g = try norm.zeroGradients(inputShape: x.shape)
        g.input = Tensor(shape: x.shape, repeating: .nan)
        if affine { g.weight = Tensor(shape: [dim], repeating: 7) }
        if bias { g.bias = Tensor(shape: [dim], repeating: -7) }
        for _ in 0..<2 {
            try norm.backward(outputGradient: dy, input: x, statistics: statistics, into: &g)
            #expect(bits(g) == bits(fresh))
        }
        for threads in [1, 2, 3] {
            try Split.run(threads: threads, "backward(into:) at \(threads) threads") {
                try norm.backward(outputGradient: dy, input: x, statistics: statistics, into: &g)
            }
            #expect(bits(g) == bits(fresh), "\(threads) threads")
        }
    }

    @Test func wrongShapesAreRefusedAndNothingChanges() throws {
        let norm = try LayerNorm(dim: 8)
        let x = Tensor.randomNormal([3, 8], seed: 1), dy = Tensor.randomNormal([3, 8], seed: 2)
        let (_, statistics) = try norm.forwardForTraining(x)
        var g = try norm.zeroGradients(inputShape: [4, 8])
        let before = g
        #expect(throws: NormKitError.self) {
            try norm.backward(outputGradient: dy, input: x, statistics: statistics, into: &g)
        }
        #expect(g == before)
        var empty = try norm.zeroGradients(inputShape: [0, 8])
        empty.weight = Tensor(shape: [8], repeating: 5)
        let (_, none) = try norm.forwardForTraining(Tensor.zeros([0, 8]))
        try norm.backward(outputGradient: Tensor.zeros([0, 8]), input: Tensor.zeros([0, 8]), statistics: none, into: &empty)
        #expect(empty.weight.scalars == [Float](repeating: 0, count: 8))
    }
}
