import Testing
import NormKit
import NormKitTesting

/// Every norm through the shared contracts (NormKitTesting's `NormalizationChecker`).
@Suite("Normalization contracts")
struct NormalizationContractTests {
    static func layerNorm(_ shape: [Int], normalized: [Int], affine: Bool = true, seed: UInt64) throws -> NormalizationChecker<LayerNorm> {
        var norm = try LayerNorm(normalizedShape: normalized, elementwiseAffine: affine)
        norm.weight = Tensor.randomNormal(normalized, mean: 1, standardDeviation: 0.5, seed: seed)
        norm.bias = Tensor.randomNormal(normalized, seed: seed + 1)
        let dim = normalized.reduce(1, *), rows = shape.reduce(1, *) / dim
        let n = norm
        return NormalizationChecker(
            norm: norm, input: Tensor.randomNormal(shape, mean: 3, standardDeviation: 2, seed: seed + 2),
            residual: Tensor.randomNormal(shape, seed: seed + 3), outputGradient: Tensor.randomNormal(shape, seed: seed + 4),
            rowLength: dim, badInputShapes: [[rows, dim + 1], [dim + 1], shape.dropLast().map { $0 } + [dim - 1]],
            backwardReference: { dy, x in
                let g = try Reference.layerNormBackwardDouble(
                    outputGradient: dy.reshaped(to: [rows, dim]), input: x.reshaped(to: [rows, dim]),
                    weight: n.elementwiseAffine ? n.weight.reshaped(to: [dim]) : nil, eps: n.eps)
                return (g.input, n.elementwiseAffine ? g.weight : nil, n.usesBias ? g.bias : nil)
            }
        ) { x in
            try Reference.layerNormDouble(x.reshaped(to: [rows, dim]), weight: n.elementwiseAffine ? n.weight.reshaped(to: [dim]) : nil,
                                          bias: n.usesBias ? n.bias.reshaped(to: [dim]) : nil, eps: n.eps)
        }
    }

    static func rmsNorm(_ shape: [Int], normalized: [Int], offset: Float = 0, seed: UInt64) throws -> NormalizationChecker<RMSNorm> {
        var norm = try RMSNorm(normalizedShape: normalized, weightOffset: offset)
        norm.weight = Tensor.randomNormal(normalized, mean: 1, standardDeviation: 0.5, seed: seed)
        let dim = normalized.reduce(1, *), rows = shape.reduce(1, *) / dim
        let n = norm
        return NormalizationChecker(
            norm: norm, input: Tensor.randomNormal(shape, mean: 1, standardDeviation: 2, seed: seed + 2),
            residual: Tensor.randomNormal(shape, seed: seed + 3), outputGradient: Tensor.randomNormal(shape, seed: seed + 4),
            rowLength: dim, badInputShapes: [[rows, dim + 1], [dim * 2]],
            backwardReference: { dy, x in
                let g = try Reference.rmsNormBackwardDouble(
                    outputGradient: dy.reshaped(to: [rows, dim]), input: x.reshaped(to: [rows, dim]),
                    weight: n.weight.reshaped(to: [dim]), eps: n.eps, weightOffset: n.weightOffset)
                return (g.input, g.weight, nil)
            }
        ) { x in
            try Reference.rmsNormDouble(x.reshaped(to: [rows, dim]), weight: n.weight.reshaped(to: [dim]), eps: n.eps,
                                        weightOffset: n.weightOffset)
        }
    }

    static func groupNorm(_ shape: [Int], groups: Int, affine: Bool = true, mean: Float = 0, seed: UInt64) throws -> NormalizationChecker<GroupNorm> {
        var norm = try GroupNorm(groups: groups, channels: shape[1], affine: affine)
        norm.weight = Tensor.randomNormal([shape[1]], mean: 1, standardDeviation: 0.5, seed: seed)
        norm.bias = Tensor.randomNormal([shape[1]], seed: seed + 1)
        let length = shape.dropFirst().reduce(1, *) / groups
        let n = norm
        return NormalizationChecker(
            norm: norm, input: Tensor.randomNormal(shape, mean: mean, standardDeviation: 2, seed: seed + 2),
            residual: Tensor.randomNormal(shape, seed: seed + 3), outputGradient: Tensor.randomNormal(shape, seed: seed + 4),
            rowLength: length, badInputShapes: [[shape[0], shape[1] + 1] + shape.dropFirst(2), [shape[1]], [1, 2 * shape[1], 4]],
            backwardReference: { dy, x in
                let g = try Reference.groupNormBackwardDouble(outputGradient: dy, input: x, groups: groups,
                                                              weight: n.affine ? n.weight : nil, eps: n.eps)
                return (g.input, n.affine ? g.weight : nil, n.affine ? g.bias : nil)
            }
        ) { x in
            try Reference.groupNormDouble(x, groups: groups, weight: n.affine ? n.weight : nil,
                                          bias: n.affine ? n.bias : nil, eps: n.eps)
        }
    }

    /// GPT-2-width rows: 4 · 48 of them, or under a sanitizer 2 · 48 (73,728 elements, still
    /// over the two blocks a split needs: `RowParallel.workerCount`).
    static var batches: Int { Sanitizer.any ? 2 : 4 }

    @Test func layerNormKeepsTheContracts() throws {
        #expect(try Self.layerNorm([Self.batches, 48, 768], normalized: [768], seed: 1).violations() == [])
        #expect(try Self.layerNorm([3, 40, 24, 32], normalized: [24, 32], seed: 11).violations() == [])
        #expect(try Self.layerNorm([200, 384], normalized: [384], affine: false, seed: 21).violations() == [])
    }

    @Test func rmsNormKeepsTheContracts() throws {
        #expect(try Self.rmsNorm([Self.batches, 48, 768], normalized: [768], seed: 2).violations() == [])
        #expect(try Self.rmsNorm([120, 8, 96], normalized: [8, 96], offset: 1, seed: 12).violations() == [])
    }

    @Test func groupNormKeepsTheContracts() throws {
        // 16 groups of 8192 (4 blocks), or under a sanitizer 8 (2 blocks: still split).
        #expect(try Self.groupNorm([Self.batches / 2, 64, 32, 32], groups: 8, seed: 3).violations() == [])
        #expect(try Self.groupNorm([4, 32, 32, 24], groups: 32, affine: false, seed: 13).violations() == [])
        // A mean a million times the spread: PyTorch's float32 group_norm is off by 0.19 there.
        #expect(try Self.groupNorm([2, 16, 48, 48], groups: 4, mean: 1e6, seed: 23).violations() == [])
        #expect(try Self.groupNorm([32, 24, 7, 5, 3], groups: 6, seed: 33).violations() == [])
    }

    /// Rows of every kind of a hard-row catalogue, in turn, `rows` of them.
    static func catalogueRows(_ kinds: [(Int, UInt64) -> [Float]], rows: Int, dim: Int) throws -> Tensor {
        let scalars = (0 ..< rows).flatMap { r in kinds[r % kinds.count](dim, UInt64(r / kinds.count)) }
        return try Tensor(shape: [rows, dim], scalars: scalars)
    }

    /// Both norms on their hard-row catalogues. Zero and constant rows give input gradients
    /// of -0 in places, which accumulating into zeros makes +0: the checker compares the
    /// accumulating form with 0 + the plain one (comparing it with the plain one failed here).
    /// Each call has just over the two blocks' worth of elements a split needs; under a
    /// sanitizer only dim 17 (dim 3 takes 21,846 rows for that, and the row kernels' short
    /// tails are checked there by the kernel tests).
    @Test func hardRowsKeepTheContracts() throws {
        for dim in Sanitizer.any ? [17] : [3, 17] {
            let rows = 65_536 / dim + 1
            var layer = try Self.layerNorm([rows, dim], normalized: [dim], seed: 41)
            layer.input = try Self.catalogueRows(Reference.HardRow.allCases.map { k in { k.values(dim: $0, seed: $1) } },
                                                 rows: rows, dim: dim)
            #expect(layer.violations() == [], "LayerNorm dim \(dim)")
            var rms = try Self.rmsNorm([rows, dim], normalized: [dim], seed: 42)
            rms.input = try Self.catalogueRows(Reference.RMSRow.allCases.map { k in { k.values(dim: $0, seed: $1) } },
                                               rows: rows, dim: dim)
            #expect(rms.violations() == [], "RMSNorm dim \(dim)")
        }
    }

    /// The checker can fail: a layer checked against another layer's reference.
    @Test func checkerCatchesAWrongReference() throws {
        var checker = try Self.groupNorm([2, 16, 8, 8], groups: 4, seed: 5)
        checker.reference = { x in try Reference.groupNormDouble(x, groups: 2, eps: 1e-5) }
        #expect(checker.violations().contains { $0.hasPrefix("forward: error") })
    }
}
