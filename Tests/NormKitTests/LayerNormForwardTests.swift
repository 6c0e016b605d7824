import NormKit
import NormKitTesting
import Testing

@Suite("LayerNorm forward against the float64 reference")
struct LayerNormForwardTests {
    @Test(arguments: [1, 2, 3, 17, 384, 768, 1024, 4099])
    func lastDimensions(dim: Int) throws {
        let x = Tensor.randomNormal([5, dim], mean: 0.3, standardDeviation: 2, seed: UInt64(dim))
        let error = try forwardError(try LayerNorm(dim: dim), x)
        #expect(error <= forwardBound, "dim \(dim): error \(error)")
    }

    @Test(arguments: [[768], [3, 768], [2, 5, 768], [2, 3, 4, 768]])
    func ranks(shape: [Int]) throws {
        let x = Tensor.randomNormal(shape, seed: UInt64(shape.count))
        let error = try forwardError(try LayerNorm(dim: 768), x)
        #expect(error <= forwardBound, "shape \(shape): error \(error)")
    }

    @Test func zeroBatchReturnsEmptyTensorOfSameShape() throws {
        let norm = try LayerNorm(dim: 768)
        for shape in [[0, 768], [2, 0, 768], [0, 0, 768]] {
            let y = try norm(Tensor.zeros(shape))
            #expect(y.shape == shape)
            #expect(y.scalarCount == 0)
        }
    }

    /// [8, 1024, 768]; under a sanitizer a smaller tensor still split over the pool
    /// (`Sanitizer.gpt2Shape`).
    @Test func gpt2Shape() throws {
        let shape = Sanitizer.gpt2Shape
        let x = Tensor.randomNormal(shape, standardDeviation: 3, seed: 2024)
        let error = try forwardError(try LayerNorm(dim: 768), x)
        #expect(error <= forwardBound, "\(shape): error \(error)")
    }

    @Test(arguments: HardRows.names)
    func hardRows(name: String) throws {
        for dim in [1, 3, 17, 768, 4099] {
            let row = HardRows.make(name, dim: dim)
            var norm = try LayerNorm(dim: dim)
            let x = try Tensor(shape: [1, dim], scalars: row)
            let error = try forwardError(norm, x)
            #expect(error <= forwardBound, "\(name), dim \(dim): error \(error)")
            // And with a random affine transform.
            norm.weight = Tensor.randomNormal([dim], mean: 1, standardDeviation: 0.5, seed: 3)
            norm.bias = Tensor.randomNormal([dim], standardDeviation: 0.2, seed: 4)
            let affineError = try forwardError(norm, x)
            #expect(affineError <= forwardBound, "\(name), dim \(dim), affine: error \(affineError)")
        }
    }

    @Test func constantRowGivesExactlyTheBias() throws {
        var norm = try LayerNorm(dim: 768)
        norm.bias = Tensor.randomNormal([768], seed: 9)
        for value: Float in [0, 1, -3.7, 1e30, .leastNonzeroMagnitude, 40000] {
            let x = Tensor(shape: [2, 768], repeating: value)
            let y = try norm(x)
            #expect(y.scalars == norm.bias.scalars + norm.bias.scalars, "constant \(value)")
        }
    }

    @Test func randomWeightAndBias() throws {
        var norm = try LayerNorm(dim: 768)
        norm.weight = Tensor.randomNormal([768], mean: 1, standardDeviation: 0.3, seed: 11)
        norm.bias = Tensor.randomNormal([768], standardDeviation: 0.1, seed: 12)
        let x = Tensor.randomNormal([4, 16, 768], mean: 0.5, standardDeviation: 4, seed: 13)
        let error = try forwardError(norm, x)
        #expect(error <= forwardBound, "error \(error)")
    }

    @Test func withoutAffineOrBias() throws {
        let x = Tensor.randomNormal([3, 33], seed: 5)
        var plain = try LayerNorm(dim: 33, elementwiseAffine: false)
        plain.weight = Tensor.randomNormal([33], seed: 6)  // ignored
        #expect(try forwardError(plain, x) <= forwardBound)
        #expect(try plain(x) == (try LayerNorm(dim: 33)(x)))

        var noBias = try LayerNorm(dim: 33, bias: false)
        noBias.weight = Tensor.randomNormal([33], seed: 7)
        noBias.bias = Tensor.ones([33])  // ignored
        let expected = try Reference.layerNormDouble(x, weight: noBias.weight, eps: noBias.eps)
        #expect(Reference.maxRowError(try noBias(x), expected: expected) <= forwardBound)
    }

    /// A parameter the layer does not apply is ignored whatever its shape: the wrong
    /// shapes that would throw on a layer that applies them ([32], [33, 1], [0], [34])
    /// give bitwise the output of a layer without them, in every forward form.
    @Test(arguments: [[32], [33, 1], [0], [34]] as [[Int]])
    func unusedParametersOfAnyShapeAreIgnored(shape: [Int]) throws {
        let x = Tensor.randomNormal([3, 33], mean: 0.5, standardDeviation: 2, seed: 5)
        let h = Tensor.randomNormal([3, 33], seed: 8)
        var plain = try LayerNorm(dim: 33, elementwiseAffine: false)
        plain.weight = Tensor(shape: shape, repeating: 3)
        plain.bias = Tensor(shape: shape, repeating: -2)
        let reference = try LayerNorm(dim: 33)
        #expect(bits(try plain(x)) == bits(try reference(x)), "no affine, weight/bias \(shape)")
        var y = Tensor.zeros(x.shape)
        try plain.forward(x, into: &y)
        #expect(bits(y) == bits(try reference(x)))
        #expect(bits(try plain.forwardForTraining(x).output) == bits(try reference(x)))
        #expect(bits(try plain.forward(x, addingResidual: h).output) == bits(try reference.forward(x, addingResidual: h).output))

        var noBias = try LayerNorm(dim: 33, bias: false)
        noBias.weight = Tensor.randomNormal([33], mean: 1, seed: 7)
        noBias.bias = Tensor(shape: shape, repeating: -2)
        var zeroBias = try LayerNorm(dim: 33)
        zeroBias.weight = noBias.weight
        #expect(bits(try noBias(x)) == bits(try zeroBias(x)), "no bias, bias \(shape)")
        // The same wrong shapes are refused by a layer that applies them.
        var applied = try LayerNorm(dim: 33)
        applied.bias = Tensor(shape: shape, repeating: -2)
        #expect(throws: NormKitError.parameterShapeMismatch(name: "bias", expected: [33], actual: shape)) { try applied(x) }
    }

    /// The raw-buffer forward refuses a count that is not a multiple of `dim`, an output
    /// of another count, and an output that partly overlaps the input (one float in, or
    /// before), writing nothing; the very same memory is in place and allowed.
    @Test func rawBufferRefusals() throws {
        let norm = try LayerNorm(dim: 4)
        var storage = [Float](repeating: 1, count: 16)
        storage.withUnsafeMutableBufferPointer { p in
            let base = p.baseAddress!
            #expect(throws: NormKitError.invalidArgument(name: "input", expected: "a multiple of dim 4 floats", actual: "6 floats")) {
                try norm.forward(UnsafeBufferPointer(start: base, count: 6), into: UnsafeMutableBufferPointer(start: base + 8, count: 6))
            }
            #expect(throws: NormKitError.invalidArgument(name: "output", expected: "8 floats (the input's count)", actual: "4 floats")) {
                try norm.forward(UnsafeBufferPointer(start: base, count: 8), into: UnsafeMutableBufferPointer(start: base + 8, count: 4))
            }
            let after = #expect(throws: NormKitError.self) {
                try norm.forward(UnsafeBufferPointer(start: base, count: 8), into: UnsafeMutableBufferPointer(start: base + 1, count: 8))
            }
            #expect(after.map { "\($0)".contains("overlapping input by 7 of 8 floats") } == true, "\(String(describing: after))")
            let before = #expect(throws: NormKitError.self) {
                try norm.forward(UnsafeBufferPointer(start: base + 4, count: 8), into: UnsafeMutableBufferPointer(start: base, count: 8))
            }
            #expect(before.map { "\($0)".contains("overlapping input by 4 of 8 floats") } == true, "\(String(describing: before))")
        }
        #expect(storage.allSatisfy { $0 == 1 }, "a refused call writes nothing")
        // In place (the very same memory) is allowed and gives the tensor form's bits.
        var values = Tensor.randomNormal([4, 4], seed: 3).scalars
        let expected = try norm(try Tensor(shape: [4, 4], scalars: values))
        try values.withUnsafeMutableBufferPointer { p in try norm.forward(UnsafeBufferPointer(p), into: p) }
        #expect(values.map(\.bitPattern) == bits(expected))
    }

    @Test func nonFiniteRowBecomesNaNAndLeavesOthersAlone() throws {
        let norm = try LayerNorm(dim: 17)
        let clean = Tensor.randomNormal([4, 17], seed: 21)
        let alone = try norm(clean)
        for bad: Float in [.nan, .infinity, -.infinity] {
            var x = clean
            x.withUnsafeMutableBufferPointer { $0[17 + 5] = bad }
            let y = try norm(x)
            for r in 0..<4 {
                let row = Array(y.scalars[(r * 17)..<((r + 1) * 17)])
                if r == 1 {
                    #expect(row.allSatisfy { $0.isNaN }, "row with \(bad) must be NaN")
                } else {
                    #expect(row == Array(alone.scalars[(r * 17)..<((r + 1) * 17)]), "row \(r) changed by \(bad)")
                }
            }
        }
    }

    @Test func rowsAreIndependentOfTheirNeighbours() throws {
        // Every hard row, alone and inside a batch of other rows, must give the same bits.
        let dim = 768
        let norm = try LayerNorm(dim: dim)
        var batch: [Float] = []
        var alone: [[Float]] = []
        for name in HardRows.names {
            let row = HardRows.make(name, dim: dim)
            batch += row
            alone.append(try norm(try Tensor(shape: [dim], scalars: row)).scalars)
        }
        let together = try norm(try Tensor(shape: [HardRows.names.count, dim], scalars: batch))
        for (i, name) in HardRows.names.enumerated() {
            let row = Array(together.scalars[(i * dim)..<((i + 1) * dim)])
            #expect(row.elementsEqual(alone[i]) { $0 == $1 || ($0.isNaN && $1.isNaN) }, "\(name)")
        }
    }

    @Test func forwardIntoMatchesForward() throws {
        let norm = try LayerNorm(dim: 100)
        let x = Tensor.randomNormal([7, 100], seed: 31)
        var out = Tensor.zeros([7, 100])
        try norm.forward(x, into: &out)
        #expect(out == (try norm.forward(x)))
        var wrong = Tensor.zeros([7, 99])
        #expect(throws: NormKitError.shapeMismatch(name: "output", expected: [7, 100], actual: [7, 99])) {
            try norm.forward(x, into: &wrong)
        }
    }
}

@Suite("LayerNorm bad input")
struct LayerNormBadInputTests {
    @Test func badDimensionThrows() {
        #expect(throws: NormKitError.invalidDimension(0)) { try LayerNorm(dim: 0) }
        #expect(throws: NormKitError.invalidDimension(-3)) { try LayerNorm(dim: -3) }
    }

    @Test(arguments: [Float(0), -1e-5, .nan, .infinity, -.infinity])
    func badEpsilonThrows(eps: Float) {
        #expect(throws: NormKitError.self) { try LayerNorm(dim: 4, eps: eps) }
        do {
            _ = try LayerNorm(dim: 4, eps: eps)
        } catch {
            #expect(error.description.contains("eps must be finite and > 0"))
        }
    }

    @Test func wrongLastDimensionThrows() throws {
        let norm = try LayerNorm(dim: 768)
        #expect(throws: NormKitError.inputShapeMismatch(expectedLastDimension: 768, actual: [2, 4, 512])) {
            try norm(Tensor.zeros([2, 4, 512]))
        }
        #expect(throws: NormKitError.inputShapeMismatch(expectedLastDimension: 768, actual: [768, 0])) {
            try norm(Tensor.zeros([768, 0]))
        }
    }

    @Test func wrongWeightOrBiasShapeThrows() throws {
        var norm = try LayerNorm(dim: 8)
        norm.weight = Tensor.ones([9])
        #expect(throws: NormKitError.parameterShapeMismatch(name: "weight", expected: [8], actual: [9])) {
            try norm(Tensor.zeros([2, 8]))
        }
        norm.weight = Tensor.ones([8])
        norm.bias = Tensor.zeros([2, 4])
        #expect(throws: NormKitError.parameterShapeMismatch(name: "bias", expected: [8], actual: [2, 4])) {
            try norm(Tensor.zeros([2, 8]))
        }
    }

    @Test func referenceChecksShapesToo() {
        #expect(throws: NormKitError.parameterShapeMismatch(name: "weight", expected: [4], actual: [3])) {
            try Reference.layerNorm(Tensor.zeros([2, 4]), weight: Tensor.ones([3]))
        }
    }
}

@Suite("The accuracy check can fail")
struct AccuracyCheckCanFailTests {
    /// The textbook float32 one-pass LayerNorm (E[x²] - E[x]², float sums): what the
    /// careful path exists to avoid.
    static func naiveOnePass(_ row: [Float], eps: Float = 1e-5) -> [Float] {
        var s1: Float = 0, s2: Float = 0
        for v in row { s1 += v; s2 += v * v }
        let n = Float(row.count)
        let mean = s1 / n
        let variance = s2 / n - mean * mean
        let rstd = 1 / (variance + eps).squareRoot()
        return row.map { ($0 - mean) * rstd }
    }

    @Test(arguments: [Reference.HardRow.largeMeanSmallSpread, .millionPlusNoise, .hugeNoise, .enormousNoise])
    func naiveFloatOnePassFailsTheBound(row: Reference.HardRow) throws {
        let values = row.values(dim: 768)
        let x = try Tensor(shape: [1, 768], scalars: values)
        let naive = try Tensor(shape: [1, 768], scalars: Self.naiveOnePass(values))
        let error = Reference.maxRowError(naive, expected: try Reference.layerNormDouble(x))
        #expect(error > 100 * forwardBound, "\(row.rawValue): naive error \(error) should be far above the bound")
        #expect(try forwardError(try LayerNorm(dim: 768), x) <= forwardBound)
    }
}
