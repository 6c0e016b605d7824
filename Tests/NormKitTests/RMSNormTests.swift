import NormKit
import NormKitTesting
import Testing

/// The gradient bound of the RMSNorm issue: per row for dx, over the tensor for dweight.
let gradientBound = 1e-5

/// Forward and backward errors of `norm` on `x` (with a seeded output gradient) against
/// the float64 reference: the worst over every instruction set this machine has.
func rmsErrors(_ norm: RMSNorm, _ x: Tensor, seed: UInt64 = 11) throws -> (forward: Double, input: Double, weight: Double) {
    let expected = try Reference.rmsNormDouble(x, weight: norm.weight, eps: norm.eps, weightOffset: norm.weightOffset)
    let dy = Tensor.randomNormal(x.shape, seed: seed)
    let eg = try Reference.rmsNormBackwardDouble(outputGradient: dy, input: x, weight: norm.weight,
                                                 eps: norm.eps, weightOffset: norm.weightOffset)
    var worst = (forward: 0.0, input: 0.0, weight: 0.0)
    for level in InstructionSet.supported {
        try InstructionSet.with(level) {
            let (y, statistics) = try norm.forwardForTraining(x)
            let g = try norm.backward(outputGradient: dy, input: x, statistics: statistics)
            worst.forward = max(worst.forward, Reference.maxRowError(y, expected: expected))
            worst.input = max(worst.input, Reference.maxRowError(g.input, expected: eg.input))
            worst.weight = max(worst.weight, Reference.maxError(g.weight, expected: eg.weight))
        }
    }
    return worst
}

/// The rows the RMSNorm issue lists (`Reference.RMSRow`), by name.
enum RMSRows {
    static let names = Reference.RMSRow.allCases.map(\.rawValue)

    static func make(_ name: String, dim: Int, seed: UInt64 = 7) -> [Float] {
        guard let row = Reference.RMSRow(rawValue: name) else { fatalError("unknown row \(name)") }
        return row.values(dim: dim, seed: seed)
    }
}

@Suite("RMSNorm against the float64 reference")
struct RMSNormTests {
    @Test(arguments: [1, 3, 17, 768, 4096, 4099])
    func randomRows(dim: Int) throws {
        let x = Tensor.randomNormal([5, dim], mean: 0.3, standardDeviation: 2, seed: UInt64(dim))
        var norm = try RMSNorm(dim: dim)
        norm.weight = Tensor.randomNormal([dim], mean: 1, standardDeviation: 0.3, seed: 5)
        let e = try rmsErrors(norm, x)
        #expect(e.forward <= forwardBound && e.input <= gradientBound && e.weight <= gradientBound, "dim \(dim): \(e)")
    }

    @Test func rankOne() throws {
        let x = Tensor.randomNormal([17], seed: 3)
        let e = try rmsErrors(try RMSNorm(dim: 17), x)
        #expect(e.forward <= forwardBound && e.input <= gradientBound && e.weight <= gradientBound, "\(e)")
        #expect(try RMSNorm(dim: 17)(x).shape == [17])
    }

    @Test func hidden4096() throws {
        let x = Tensor.randomNormal([2, 64, 4096], standardDeviation: 2, seed: 4096)
        var norm = try RMSNorm(dim: 4096, eps: 1e-5)
        norm.weight = Tensor.randomNormal([4096], mean: 1, standardDeviation: 0.2, seed: 6)
        let e = try rmsErrors(norm, x)
        #expect(e.forward <= forwardBound && e.input <= gradientBound && e.weight <= gradientBound, "\(e)")
    }

    @Test func gemmaOffset() throws {
        for dim in [3, 768, 2048] {
            let x = Tensor.randomNormal([6, dim], standardDeviation: 4, seed: UInt64(dim))
            var norm = try RMSNorm(dim: dim, eps: 1e-6, weightOffset: 1)
            // Gemma stores w near 0: the scale is 1 + w.
            norm.weight = Tensor.randomNormal([dim], standardDeviation: 0.3, seed: 8)
            let e = try rmsErrors(norm, x)
            #expect(e.forward <= forwardBound && e.input <= gradientBound && e.weight <= gradientBound, "dim \(dim): \(e)")
            // The offset really is applied: weight 0 with offset 1 is weight 1 without.
            var zero = try RMSNorm(dim: dim, weightOffset: 1)
            zero.weight = Tensor.zeros([dim])
            #expect(try zero(x) == (try RMSNorm(dim: dim))(x))
        }
    }

    @Test(arguments: RMSRows.names)
    func listedRows(name: String) throws {
        for dim in [1, 3, 17, 768, 4096, 4099] {
            let x = try Tensor(shape: [1, dim], scalars: RMSRows.make(name, dim: dim))
            var norm = try RMSNorm(dim: dim)
            let e = try rmsErrors(norm, x)
            #expect(e.forward <= forwardBound && e.input <= gradientBound && e.weight <= gradientBound,
                    "\(name), dim \(dim): \(e)")
            norm.weight = Tensor.randomNormal([dim], mean: 1, standardDeviation: 0.5, seed: 3)
            let w = try rmsErrors(norm, x, seed: 12)
            #expect(w.forward <= forwardBound && w.input <= gradientBound && w.weight <= gradientBound,
                    "\(name), dim \(dim), weighted: \(w)")
        }
    }

    /// Every catalogued LayerNorm hard row is also a fair RMSNorm input.
    @Test(arguments: HardRows.names)
    func layerNormHardRows(name: String) throws {
        for dim in [3, 768, 4099] {
            let x = try Tensor(shape: [1, dim], scalars: HardRows.make(name, dim: dim))
            let e = try rmsErrors(try RMSNorm(dim: dim), x)
            #expect(e.forward <= forwardBound && e.input <= gradientBound && e.weight <= gradientBound,
                    "\(name), dim \(dim): \(e)")
        }
    }

    /// The zero row is exactly zero (0·rrms·w), and the rrms is 1/sqrt(eps).
    @Test func zeroRowIsExactlyZero() throws {
        let norm = try RMSNorm(dim: 768, eps: 1e-6)
        let (y, s) = try norm.forwardForTraining(Tensor.zeros([2, 768]))
        #expect(y.scalars.allSatisfy { $0 == 0 })
        #expect(abs(s.reciprocalRootMeanSquares[0] - 1 / (Double(Float(1e-6))).squareRoot()) < 1e-9)
    }

    @Test func nanOrInfinityStaysInItsRow() throws {
        let dim = 768
        for bad: Float in [.nan, .infinity, -.infinity] {
            var values = Tensor.randomNormal([4, dim], seed: 1).scalars
            values[2 * dim + 100] = bad
            let x = try Tensor(shape: [4, dim], scalars: values)
            let norm = try RMSNorm(dim: dim)
            let (y, s) = try norm.forwardForTraining(x)
            let clean = try norm(Tensor(shape: [4, dim], scalars: Tensor.randomNormal([4, dim], seed: 1).scalars))
            for r in 0..<4 {
                let row = Array(y.scalars[(r * dim)..<((r + 1) * dim)])
                if r == 2 {
                    #expect(row.allSatisfy { $0.isNaN }, "\(bad): row 2 must be NaN")
                    #expect(s.reciprocalRootMeanSquares[r].isNaN)
                } else {
                    #expect(row == Array(clean.scalars[(r * dim)..<((r + 1) * dim)]), "\(bad): row \(r) changed")
                }
            }
            let g = try norm.backward(outputGradient: Tensor.ones(x.shape), input: x, statistics: s)
            for r in 0..<4 {
                let row = g.input.scalars[(r * dim)..<((r + 1) * dim)]
                #expect(r == 2 ? row.allSatisfy { $0.isNaN } : row.allSatisfy { $0.isFinite }, "\(bad): gradient row \(r)")
            }
            #expect(g.weight.scalars.allSatisfy { $0.isNaN })
        }
    }

    @Test(arguments: InstructionSet.supported)
    func everyFormGivesTheSameBits(level: InstructionSet) throws {
        try InstructionSet.with(level) { try everyFormGivesTheSameBits() }
    }

    func everyFormGivesTheSameBits() throws {
        for dim in [3, 768, 4099] {
            // Mixed rows, so both paths run: random, huge, tiny, zeros.
            var values: [Float] = []
            for name in ["randn", "1e30*randn", "1e-25*randn", "zeros", "1e6 + randn", "massive channels"] {
                values += RMSRows.make(name, dim: dim)
            }
            let x = try Tensor(shape: [6, dim], scalars: values)
            var norm = try RMSNorm(dim: dim, weightOffset: dim == 3 ? 1 : 0)
            norm.weight = Tensor.randomNormal([dim], mean: 1, standardDeviation: 0.3, seed: 2)
            let y = try norm.forward(x)
            #expect(try norm(x) == y)
            var into = Tensor.zeros(x.shape)
            try norm.forward(x, into: &into)
            #expect(into == y)
            #expect(try norm.forwardForTraining(x).output == y)
            var raw = [Float](repeating: 0, count: x.scalarCount)
            try x.scalars.withUnsafeBufferPointer { xp in
                try raw.withUnsafeMutableBufferPointer { yp in try norm.forward(xp, into: yp) }
            }
            #expect(raw == y.scalars)
            var inPlace = x.scalars
            try inPlace.withUnsafeMutableBufferPointer { p in try norm.forward(UnsafeBufferPointer(p), into: p) }
            #expect(inPlace == y.scalars)
        }
    }

    @Test func bitwiseTheSameForEveryThreadCount() throws {
        // 512 rows (13 forward blocks), 320 under a sanitizer (8, still split; rows 7 to 307 hard).
        let rows = Sanitizer.any ? 320 : 512
        var values = Tensor.randomNormal([rows, 768], standardDeviation: 3, seed: 77).scalars
        for (r, name) in ["1e30*randn", "1e-25*randn", "zeros", "massive channels"].enumerated() {
            let row = RMSRows.make(name, dim: 768)
            for i in 0..<768 { values[(100 * r + 7) * 768 + i] = row[i] }
        }
        let x = try Tensor(shape: [rows, 768], scalars: values)
        var norm = try RMSNorm(dim: 768)
        norm.weight = Tensor.randomNormal([768], mean: 1, standardDeviation: 0.3, seed: 2)
        let dy = Tensor.randomNormal(x.shape, seed: 78)
        // Every output as bit patterns; each pass on its own, so the probe shows that
        // each of them was split.
        func run(_ threads: Int, _ level: InstructionSet) throws -> [[UInt64]] {
            let widen = { (t: Tensor) in bits(t).map(UInt64.init) }
            let y = try Split.run(threads: threads, "\(level): forward, \(threads) threads") { try norm(x) }
            let (yt, s) = try Split.run(threads: threads, "\(level): forwardForTraining, \(threads) threads") {
                try norm.forwardForTraining(x)
            }
            let g = try Split.run(threads: threads, "\(level): backward, \(threads) threads") {
                try norm.backward(outputGradient: dy, input: x, statistics: s)
            }
            return [widen(y), widen(yt), s.reciprocalRootMeanSquares.map(\.bitPattern), widen(g.input), widen(g.weight)]
        }
        for level in InstructionSet.supported {
            try InstructionSet.with(level) {
                let one = try run(1, level)
                for threads in [2, 3, 7] {
                    #expect(try run(threads, level) == one, "\(level), \(threads) threads")
                }
            }
        }
    }

    @Test func accumulatingBackwardAddsToWhatIsThere() throws {
        let x = Tensor.randomNormal([70, 17], seed: 1)
        var norm = try RMSNorm(dim: 17)
        norm.weight = Tensor.randomNormal([17], mean: 1, standardDeviation: 0.2, seed: 2)
        let (_, s) = try norm.forwardForTraining(x)
        let dy = Tensor.randomNormal(x.shape, seed: 3)
        let fresh = try norm.backward(outputGradient: dy, input: x, statistics: s)
        var acc = RMSNorm.Gradients(input: Tensor.randomNormal(x.shape, seed: 4), weight: Tensor.randomNormal([17], seed: 5))
        let before = acc
        try norm.backward(outputGradient: dy, input: x, statistics: s, accumulatingInto: &acc)
        #expect(acc.input.scalars == zip(before.input.scalars, fresh.input.scalars).map { $0 + $1 })
        for j in 0..<17 {
            let sum = before.weight.scalars[j] + fresh.weight.scalars[j]
            #expect(abs(acc.weight.scalars[j] - sum) <= 2 * sum.ulp, "weight \(j)")
        }
        var zero = try norm.zeroGradients(inputShape: x.shape)
        try norm.backward(outputGradient: dy, input: x, statistics: s, accumulatingInto: &zero)
        #expect(zero == fresh)
    }

    @Test func statisticsFromSavedValues() throws {
        let norm = try RMSNorm(dim: 4)
        let x = Tensor.randomNormal([2, 3, 4], seed: 1)
        let (_, s) = try norm.forwardForTraining(x)
        #expect(s.rowCount == 6)
        #expect(s.rrms.shape == [2, 3, 1])
        let copy = try RMSNorm.Statistics(inputShape: [2, 3, 4], reciprocalRootMeanSquares: s.reciprocalRootMeanSquares)
        #expect(copy == s)
        #expect(throws: NormKitError.invalidArgument(name: "reciprocalRootMeanSquares",
                                                    expected: "6 values (one per row of [2, 3, 4])", actual: "5")) {
            _ = try RMSNorm.Statistics(inputShape: [2, 3, 4], reciprocalRootMeanSquares: [1, 2, 3, 4, 5])
        }
    }

    @Test func emptyInputs() throws {
        let norm = try RMSNorm(dim: 8)
        for shape in [[0, 8], [2, 0, 8]] {
            let (y, s) = try norm.forwardForTraining(Tensor.zeros(shape))
            #expect(y.shape == shape && s.rowCount == 0)
            let g = try norm.backward(outputGradient: Tensor.zeros(shape), input: Tensor.zeros(shape), statistics: s)
            #expect(g.input.shape == shape && g.weight == Tensor.zeros([8]))
        }
        let empty: [Float] = []
        var out: [Float] = []
        try empty.withUnsafeBufferPointer { x in try out.withUnsafeMutableBufferPointer { y in try norm.forward(x, into: y) } }
    }
}

@Suite("RMSNorm refusals")
struct RMSNormRefusalTests {
    @Test func badSettings() {
        #expect(throws: NormKitError.invalidDimension(0)) { _ = try RMSNorm(dim: 0) }
        #expect(throws: NormKitError.invalidEpsilon(0)) { _ = try RMSNorm(dim: 4, eps: 0) }
        #expect(throws: NormKitError.invalidEpsilon(-1)) { _ = try RMSNorm(dim: 4, eps: -1) }
        #expect(throws: NormKitError.invalidArgument(name: "weightOffset", expected: "finite (0, or 1 for Gemma)", actual: "inf")) {
            _ = try RMSNorm(dim: 4, weightOffset: .infinity)
        }
        #expect(NormKitError.invalidDimension(0).description == "a norm layer's dim must be >= 1, got 0")
    }

    @Test func badShapes() throws {
        var norm = try RMSNorm(dim: 4)
        let x = Tensor.zeros([2, 4])
        #expect(throws: NormKitError.inputShapeMismatch(expectedLastDimension: 4, actual: [2, 5])) {
            _ = try norm(Tensor.zeros([2, 5]))
        }
        var out = Tensor.zeros([2, 5])
        #expect(throws: NormKitError.shapeMismatch(name: "output", expected: [2, 4], actual: [2, 5])) {
            try norm.forward(x, into: &out)
        }
        #expect(out == Tensor.zeros([2, 5]))
        let (_, s) = try norm.forwardForTraining(x)
        #expect(throws: NormKitError.shapeMismatch(name: "outputGradient", expected: [2, 4], actual: [4, 2, 4])) {
            _ = try norm.backward(outputGradient: Tensor.zeros([4, 2, 4]), input: x, statistics: s)
        }
        let s2 = try norm.forwardForTraining(Tensor.zeros([3, 4])).statistics
        #expect(throws: NormKitError.shapeMismatch(name: "statistics.inputShape", expected: [2, 4], actual: [3, 4])) {
            _ = try norm.backward(outputGradient: x, input: x, statistics: s2)
        }
        var g = RMSNorm.Gradients(input: Tensor.ones([2, 4]), weight: Tensor.ones([5]))
        #expect(throws: NormKitError.shapeMismatch(name: "gradients.weight", expected: [4], actual: [5])) {
            try norm.backward(outputGradient: x, input: x, statistics: s, accumulatingInto: &g)
        }
        #expect(g.input == Tensor.ones([2, 4]))
        norm.weight = Tensor.ones([3])
        #expect(throws: NormKitError.parameterShapeMismatch(name: "weight", expected: [4], actual: [3])) {
            _ = try norm(x)
        }
    }

    @Test func badBuffers() throws {
        let norm = try RMSNorm(dim: 4)
        var storage = [Float](repeating: 1, count: 16)
        storage.withUnsafeMutableBufferPointer { p in
            let base = p.baseAddress!
            #expect(throws: NormKitError.invalidArgument(name: "input", expected: "a multiple of dim 4 floats", actual: "6 floats")) {
                try norm.forward(UnsafeBufferPointer(start: base, count: 6), into: UnsafeMutableBufferPointer(start: base + 8, count: 6))
            }
            #expect(throws: NormKitError.invalidArgument(name: "output", expected: "8 floats (the input's count)", actual: "4 floats")) {
                try norm.forward(UnsafeBufferPointer(start: base, count: 8), into: UnsafeMutableBufferPointer(start: base + 8, count: 4))
            }
            // Output starts one float into the input: a partial overlap.
            #expect(throws: NormKitError.self) {
                try norm.forward(UnsafeBufferPointer(start: base, count: 8), into: UnsafeMutableBufferPointer(start: base + 1, count: 8))
            }
            #expect(throws: NormKitError.self) {
                try norm.forward(UnsafeBufferPointer(start: base + 4, count: 8), into: UnsafeMutableBufferPointer(start: base, count: 8))
            }
        }
        #expect(storage.allSatisfy { $0 == 1 }, "a refused call writes nothing")
        let error = #expect(throws: NormKitError.self) {
            try storage.withUnsafeMutableBufferPointer { p throws(NormKitError) in
                try norm.forward(UnsafeBufferPointer(start: p.baseAddress!, count: 8), into: UnsafeMutableBufferPointer(start: p.baseAddress! + 2, count: 8))
            }
        }
        #expect(error.map { "\($0)".contains("overlapping input by 6 of 8 floats") } == true, "\(String(describing: error))")
    }
}
