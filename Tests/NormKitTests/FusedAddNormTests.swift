import NormKit
import NormKitTesting
import Testing

/// One norm (LayerNorm or RMSNorm) seen through the calls the fused tests need.
struct FusedNorm: CustomStringConvertible {
    var description: String
    var plain: (Tensor) throws -> Tensor
    var fused: (Tensor, Tensor) throws -> (output: Tensor, sum: Tensor)
    var inPlace: (Tensor, inout Tensor, inout Tensor) throws -> Void
    var training: (Tensor, Tensor) throws -> (output: Tensor, sum: Tensor)
    var raw: (UnsafeBufferPointer<Float>, UnsafeMutableBufferPointer<Float>, UnsafeMutableBufferPointer<Float>) throws -> Void
    var rawPlain: (UnsafeBufferPointer<Float>, UnsafeMutableBufferPointer<Float>) throws -> Void
    var reference: (Tensor) throws -> [Double]

    static func layer(_ dim: Int, weighted: Bool = true) throws -> FusedNorm {
        var n = try LayerNorm(dim: dim)
        if weighted {
            n.weight = Tensor.randomNormal([dim], mean: 1, standardDeviation: 0.3, seed: 21)
            n.bias = Tensor.randomNormal([dim], standardDeviation: 0.2, seed: 22)
        }
        let norm = n
        return FusedNorm(
            description: "LayerNorm(\(dim))",
            plain: { try norm($0) },
            fused: { try norm.forward($0, addingResidual: $1) },
            inPlace: { try norm.forward($0, addingTo: &$1, into: &$2) },
            training: { let r = try norm.forwardForTraining($0, addingResidual: $1); return (r.output, r.sum) },
            raw: { try norm.forward($0, addingTo: $1, into: $2) },
            rawPlain: { try norm.forward($0, into: $1) },
            reference: { try Reference.layerNormDouble($0, weight: norm.weight, bias: norm.bias, eps: norm.eps) })
    }

    static func rms(_ dim: Int, offset: Float = 0) throws -> FusedNorm {
        var n = try RMSNorm(dim: dim, weightOffset: offset)
        n.weight = Tensor.randomNormal([dim], mean: offset == 0 ? 1 : 0, standardDeviation: 0.3, seed: 23)
        let norm = n
        return FusedNorm(
            description: "RMSNorm(\(dim), offset \(offset))",
            plain: { try norm($0) },
            fused: { try norm.forward($0, addingResidual: $1) },
            inPlace: { try norm.forward($0, addingTo: &$1, into: &$2) },
            training: { let r = try norm.forwardForTraining($0, addingResidual: $1); return (r.output, r.sum) },
            raw: { try norm.forward($0, addingTo: $1, into: $2) },
            rawPlain: { try norm.forward($0, into: $1) },
            reference: { try Reference.rmsNormDouble($0, weight: norm.weight, eps: norm.eps, weightOffset: norm.weightOffset) })
    }

    static func all(_ dim: Int) throws -> [FusedNorm] { [try layer(dim), try rms(dim), try rms(dim, offset: 1)] }
}

/// The element-wise float sum, as `+` gives it.
func floatSum(_ a: Tensor, _ b: Tensor) throws -> Tensor {
    try Tensor(shape: a.shape, scalars: zip(a.scalars, b.scalars).map { $0 + $1 })
}

/// The streams the fused issue lists (`Reference.ResidualStream`), by name.
enum Streams {
    static let names = Reference.ResidualStream.allCases.map(\.rawValue)

    static func make(_ name: String, rows: Int, dim: Int) throws -> (input: Tensor, residual: Tensor) {
        guard let stream = Reference.ResidualStream(rawValue: name) else { fatalError("unknown stream \(name)") }
        return try stream.tensors(rows: rows, dim: dim)
    }
}

@Suite("Add & Norm: the residual add fused into LayerNorm and RMSNorm")
struct FusedAddNormTests {
    @Test(arguments: Streams.names)
    func outputIsTheNormOfTheFloatSum(stream: String) throws {
        for dim in [1, 3, 17, 768, 4099] {
            let (x, h) = try Streams.make(stream, rows: 5, dim: dim)
            let sum = try floatSum(x, h)
            for norm in try FusedNorm.all(dim) {
                for level in InstructionSet.supported {
                    let (y, s) = try InstructionSet.with(level) { try norm.fused(x, h) }
                    #expect(s.scalars == sum.scalars, "\(norm) \(stream) \(level): the sum is the float sum")
                    let error = Reference.maxRowError(y, expected: try norm.reference(sum))
                    #expect(error <= forwardBound, "\(norm) \(stream) dim \(dim) \(level): error \(error)")
                }
            }
        }
    }

    @Test(arguments: InstructionSet.supported)
    func everyFormGivesTheBitsOfThePlainForwardOfTheSum(level: InstructionSet) throws {
        try InstructionSet.with(level) {
            for dim in [3, 768, 4099] {
                for stream in Streams.names {
                    let (x, h) = try Streams.make(stream, rows: 6, dim: dim)
                    let sum = try floatSum(x, h)
                    for norm in try FusedNorm.all(dim) {
                        let expected = try norm.plain(sum)
                        let label = "\(norm) \(stream) dim \(dim)"
                        let (y, s) = try norm.fused(x, h)
                        #expect(y == expected && s == sum, "\(label): allocating")
                        let (yt, st) = try norm.training(x, h)
                        #expect(yt == expected && st == sum, "\(label): training")
                        var stream = h, out = Tensor.zeros(x.shape)
                        try norm.inPlace(x, &stream, &out)
                        #expect(out == expected && stream == sum, "\(label): in place")
                        // Raw buffers: separate output, output = residual, output = input.
                        var r = h.scalars, o = [Float](repeating: 0, count: x.scalarCount)
                        try x.scalars.withUnsafeBufferPointer { xp in
                            try r.withUnsafeMutableBufferPointer { rp in
                                try o.withUnsafeMutableBufferPointer { op in try norm.raw(xp, rp, op) }
                            }
                        }
                        #expect(o == expected.scalars && r == sum.scalars, "\(label): raw")
                        var r2 = h.scalars
                        try x.scalars.withUnsafeBufferPointer { xp in
                            try r2.withUnsafeMutableBufferPointer { rp in try norm.raw(xp, rp, rp) }
                        }
                        #expect(r2 == expected.scalars, "\(label): raw, output = residual")
                        var x2 = x.scalars, r3 = h.scalars
                        try x2.withUnsafeMutableBufferPointer { xp in
                            try r3.withUnsafeMutableBufferPointer { rp in try norm.raw(UnsafeBufferPointer(xp), rp, xp) }
                        }
                        #expect(x2 == expected.scalars && r3 == sum.scalars, "\(label): raw, output = input")
                        // The plain raw form, in place.
                        var inPlace = sum.scalars
                        try inPlace.withUnsafeMutableBufferPointer { p in try norm.rawPlain(UnsafeBufferPointer(p), p) }
                        #expect(inPlace == expected.scalars, "\(label): raw plain in place")
                    }
                }
            }
        }
    }

    @Test func bitwiseTheSameForEveryThreadCount() throws {
        // 600 rows, 150 under a sanitizer (three blocks of 42 and a partial one: still split).
        let (x, h) = try Streams.make("gpt2 massive channels", rows: Sanitizer.any ? 150 : 600, dim: 768)
        for norm in try FusedNorm.all(768) {
            let one = try Parallelism.withThreadCount(1) { try norm.fused(x, h) }
            for threads in [2, 3, 7] {
                let other = try Split.run(threads: threads, "\(norm), \(threads) threads") { () throws -> (Tensor, Tensor) in
                    var s = h, y = Tensor.zeros(x.shape)
                    try norm.inPlace(x, &s, &y)
                    return (y, s)
                }
                #expect(bits(other.0) == bits(one.output) && bits(other.1) == bits(one.sum), "\(norm), \(threads) threads")
            }
        }
    }

    @Test func aNaNStaysInItsRow() throws {
        let dim = 768
        let (x, h) = try Streams.make("randn", rows: 4, dim: dim)
        var bad = x.scalars
        bad[dim + 10] = .nan
        let xn = try Tensor(shape: x.shape, scalars: bad)
        for norm in try FusedNorm.all(dim) {
            let (y, s) = try norm.fused(xn, h)
            let (clean, _) = try norm.fused(x, h)
            for r in 0..<4 {
                let row = (r * dim)..<((r + 1) * dim)
                if r == 1 {
                    #expect(y.scalars[row].allSatisfy { $0.isNaN }, "\(norm)")
                    #expect(s.scalars[dim + 10].isNaN && s.scalars[dim + 11] == x.scalars[dim + 11] + h.scalars[dim + 11])
                } else {
                    #expect(Array(y.scalars[row]) == Array(clean.scalars[row]), "\(norm): row \(r)")
                }
            }
        }
    }

    @Test func badInputThrowsAndLeavesTheStreamAlone() throws {
        let norms: [(String, FusedNorm)] = try [("layer", FusedNorm.layer(4)), ("rms", FusedNorm.rms(4))]
        for (name, norm) in norms {
            let x = Tensor.randomNormal([2, 4], seed: 1)
            let stream0 = Tensor.randomNormal([2, 4], seed: 2)
            // A residual of another shape: names both shapes.
            #expect(throws: NormKitError.shapeMismatch(name: "residual", expected: [2, 4], actual: [3, 4]), "\(name)") {
                _ = try norm.fused(x, Tensor.zeros([3, 4]))
            }
            var stream = stream0, out = Tensor.zeros([2, 4])
            var wrongStream = Tensor.zeros([2, 5])
            #expect(throws: NormKitError.self) { try norm.inPlace(x, &wrongStream, &out) }
            var wrongOut = Tensor.zeros([4, 2])
            #expect(throws: NormKitError.shapeMismatch(name: "output", expected: [2, 4], actual: [4, 2])) {
                try norm.inPlace(x, &stream, &wrongOut)
            }
            #expect(stream == stream0 && wrongOut == Tensor.zeros([4, 2]), "\(name): unchanged")
            #expect(throws: NormKitError.inputShapeMismatch(expectedLastDimension: 4, actual: [2, 5])) {
                try norm.inPlace(Tensor.zeros([2, 5]), &stream, &out)
            }
            #expect(stream == stream0 && out == Tensor.zeros([2, 4]))

            // Raw buffers: counts and partial overlaps, nothing written.
            var memory = [Float](repeating: 7, count: 32)
            try memory.withUnsafeMutableBufferPointer { m throws in
                let base = m.baseAddress!
                func buffers(_ i: Int, _ ni: Int, _ r: Int, _ nr: Int, _ o: Int, _ no: Int) throws {
                    try norm.raw(UnsafeBufferPointer(start: base + i, count: ni),
                                 UnsafeMutableBufferPointer(start: base + r, count: nr),
                                 UnsafeMutableBufferPointer(start: base + o, count: no))
                }
                #expect(throws: NormKitError.invalidArgument(name: "residual", expected: "8 floats (the input's count)", actual: "4 floats")) {
                    try buffers(0, 8, 8, 4, 16, 8)
                }
                #expect(throws: NormKitError.invalidArgument(name: "output", expected: "8 floats (the input's count)", actual: "12 floats")) {
                    try buffers(0, 8, 8, 8, 16, 12)
                }
                #expect(throws: NormKitError.invalidArgument(name: "input", expected: "a multiple of dim 4 floats", actual: "6 floats")) {
                    try buffers(0, 6, 8, 6, 16, 6)
                }
                #expect(throws: NormKitError.self) { try buffers(0, 8, 4, 8, 16, 8) }   // input / residual
                #expect(throws: NormKitError.self) { try buffers(0, 8, 16, 8, 6, 8) }   // input / output
                #expect(throws: NormKitError.self) { try buffers(0, 8, 8, 8, 12, 8) }   // residual / output
            }
            #expect(memory.allSatisfy { $0 == 7 }, "\(name): a refused call writes nothing")
        }
        // A wrong weight: refused before the stream is touched.
        var rms = try RMSNorm(dim: 4)
        rms.weight = Tensor.ones([5])
        var stream = Tensor.ones([2, 4]), out = Tensor.zeros([2, 4])
        #expect(throws: NormKitError.parameterShapeMismatch(name: "weight", expected: [4], actual: [5])) {
            try rms.forward(Tensor.ones([2, 4]), addingTo: &stream, into: &out)
        }
        #expect(stream == Tensor.ones([2, 4]))
        var layer = try LayerNorm(dim: 4)
        layer.bias = Tensor.ones([3])
        #expect(throws: NormKitError.parameterShapeMismatch(name: "bias", expected: [4], actual: [3])) {
            try layer.forward(Tensor.ones([2, 4]), addingTo: &stream, into: &out)
        }
        #expect(stream == Tensor.ones([2, 4]))
    }

    /// Backward through the sum: with loss L = Σ c1·y + Σ c2·sum (c2 is what flows into
    /// the stream from later blocks), ∂L/∂input = ∂L/∂residual = c2 + norm'(c1). The
    /// accumulating backward, started from c2, gives exactly that.
    @Test func gradientFlowsThroughTheSumIntoBothAddends() throws {
        let dim = 768
        let (x, h) = try Streams.make("gpt2 massive channels", rows: 8, dim: dim)
        let c1 = Tensor.randomNormal(x.shape, seed: 41), c2 = Tensor.randomNormal(x.shape, seed: 42)

        var rms = try RMSNorm(dim: dim)
        rms.weight = Tensor.randomNormal([dim], mean: 1, standardDeviation: 0.3, seed: 43)
        let (_, sum, stats) = try rms.forwardForTraining(x, addingResidual: h)
        var g = RMSNorm.Gradients(input: c2, weight: Tensor.zeros([dim]))
        try rms.backward(outputGradient: c1, input: sum, statistics: stats, accumulatingInto: &g)
        let e = try Reference.rmsNormBackwardDouble(outputGradient: c1, input: sum, weight: rms.weight, eps: rms.eps)
        let expected = zip(e.input, c2.scalars).map { $0 + Double($1) }
        #expect(Reference.maxRowError(g.input, expected: expected) <= gradientBound)
        #expect(Reference.maxError(g.weight, expected: e.weight) <= gradientBound)
        // Bitwise: the accumulated gradient is c2 + the fresh one, element by element.
        let fresh = try rms.backward(outputGradient: c1, input: sum, statistics: stats)
        #expect(g.input == (try floatSum(c2, fresh.input)))

        var ln = try LayerNorm(dim: dim)
        ln.weight = rms.weight
        let (_, lsum, lstats) = try ln.forwardForTraining(x, addingResidual: h)
        var lg = try ln.zeroGradients(inputShape: x.shape)
        lg.input = c2
        try ln.backward(outputGradient: c1, input: lsum, statistics: lstats, accumulatingInto: &lg)
        let le = try Reference.layerNormBackwardDouble(outputGradient: c1, input: lsum, weight: ln.weight, eps: ln.eps)
        let lexpected = zip(le.input, c2.scalars).map { $0 + Double($1) }
        #expect(Reference.maxRowError(lg.input, expected: lexpected) <= gradientBound)
        #expect(Reference.maxError(lg.bias, expected: le.bias) <= gradientBound)
    }
}
