// The LayerNorm forward's certified float fast path (docs/numerics.md, "The fast path"):
// rows on each side of each certificate threshold take the path the certificate says,
// and every row, on every path, meets 1e-6·max(1, max|y|) of float64.
import CNormKernels
@testable import NormKit
import NormKitTesting
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// max |v[i]|, as the layer passes it to the kernels (ForwardParameters.largestMagnitude).
private func largest(_ v: [Float]) -> Float { v.withUnsafeBufferPointer { ForwardParameters.largestMagnitude($0.baseAddress!, $0.count) } }

/// One row through the kernel layer's `forward_row_path` at `level`, with the shift
/// given (NormKit's caller passes Float(sdot(x, 1)/n)).
private func runRow(
    _ x: [Float], weight: [Float]? = nil, bias: [Float]? = nil, shift: Float? = nil, eps: Double = 1e-5,
    level: InstructionSet
) -> (y: [Float], path: Int32, stats: [Double]) {
    let n = x.count
    let w = weight ?? [Float](repeating: 1, count: n), b = bias ?? [Float](repeating: 0, count: n)
    let s = shift ?? Float(x.reduce(0.0) { $0 + Double($1) } / Double(n))
    var y = [Float](repeating: 0, count: n)
    var stats = [Double](repeating: 0, count: 2)
    let table = Kernels.layerNorm(at: level)
    let path = y.withUnsafeMutableBufferPointer { yp in
        stats.withUnsafeMutableBufferPointer { sp in
            table.forward_row_path(x, yp.baseAddress!, n, s, eps, w, b, largest(w), largest(b), sp.baseAddress!)
        }
    }
    return (y, path, stats)
}

/// One row through `forward_row_sampled` at `level`: 0 and (y, mean, rstd) when the
/// sampled fast path certified it, else 1 (y as the kernel left it, stats untouched).
private func runSampled(
    _ x: [Float], weight: [Float]? = nil, bias: [Float]? = nil, eps: Double = 1e-5, inPlace: Bool = false,
    level: InstructionSet
) -> (status: Int32, y: [Float], stats: [Double]) {
    let n = x.count
    let w = weight ?? [Float](repeating: 1, count: n), b = bias ?? [Float](repeating: 0, count: n)
    var y = inPlace ? x : [Float](repeating: 0, count: n)
    var stats: [Double] = [.nan, .nan]
    let table = Kernels.layerNorm(at: level)
    let status = y.withUnsafeMutableBufferPointer { yp in
        stats.withUnsafeMutableBufferPointer { sp in
            if inPlace {
                return table.forward_row_sampled(UnsafePointer(yp.baseAddress!), yp.baseAddress!, n, eps, w, b, largest(w),
                                                 largest(b), sp.baseAddress!)
            }
            return table.forward_row_sampled(x, yp.baseAddress!, n, eps, w, b, largest(w), largest(b), sp.baseAddress!)
        }
    }
    return (status, y, stats)
}

/// What `ForwardKernel.normalizeRow` does: the sampled fast path, and on a refusal the
/// full path about the given shift. `sampled` says which one wrote y.
private func runNormalized(
    _ x: [Float], weight: [Float]? = nil, bias: [Float]? = nil, level: InstructionSet
) -> (y: [Float], path: Int32, sampled: Bool) {
    let s = runSampled(x, weight: weight, bias: bias, level: level)
    if s.status == 0 { return (s.y, NK_LN_PATH_FAST, true) }
    let r = runRow(x, weight: weight, bias: bias, level: level)
    return (r.y, r.path, false)
}

/// max|y - y64| / max(1, max|y64|), with y64 the float64 LayerNorm of the same float inputs.
private func rowError(_ x: [Float], _ y: [Float], weight: [Float]? = nil, bias: [Float]? = nil, eps: Double = 1e-5) -> Double {
    let n = x.count
    var mean = 0.0
    for v in x { mean += Double(v) }
    mean /= Double(n)
    var variance = 0.0
    for v in x { variance += (Double(v) - mean) * (Double(v) - mean) }
    variance /= Double(n)
    let rstd = 1 / (variance + eps).squareRoot()
    var worst = 0.0, scale = 1.0
    var expected = [Double](repeating: 0, count: n)
    for i in 0..<n {
        let w = Double(weight?[i] ?? 1), b = Double(bias?[i] ?? 0)
        expected[i] = w * ((Double(x[i]) - mean) * rstd) + b
        scale = max(scale, abs(expected[i]))
    }
    for i in 0..<n { worst = max(worst, abs(Double(y[i]) - expected[i])) }
    return worst / scale
}

private func gaussianRow(_ n: Int, seed: UInt64, mean: Float = 0, scale: Float = 1) -> [Float] {
    Tensor.randomNormal([n], seed: seed).scalars.map { mean + scale * $0 }
}

struct ForwardFastPathTests {
    static let levels = InstructionSet.supported

    @Test("Ordinary rows take the fast path, within 1e-6", arguments: levels)
    func ordinaryRowsAreFast(level: InstructionSet) {
        for (i, n) in [3, 17, 128, 768, 4096].enumerated() {
            for mean: Float in [0, 1, 100] {
                let x = gaussianRow(n, seed: UInt64(i + 1), mean: mean)
                let r = runRow(x, level: level)
                #expect(r.path == NK_LN_PATH_FAST, "n \(n) mean \(mean) \(level)")
                #expect(rowError(x, r.y) <= 1e-6, "n \(n) mean \(mean) \(level)")
            }
        }
    }

    @Test("Shift certificate: a shift σ/4 off is certified, 20σ off is not", arguments: levels)
    func shiftThreshold(level: InstructionSet) {
        let x = gaussianRow(768, seed: 3, mean: 5)
        let mean = Float(x.reduce(0.0) { $0 + Double($1) } / 768)
        let near = runRow(x, shift: mean + 0.25, level: level)
        let far = runRow(x, shift: mean + 20, level: level)
        #expect(near.path == NK_LN_PATH_FAST)
        #expect(far.path == NK_LN_PATH_DOUBLE_MOMENTS)
        #expect(rowError(x, near.y) <= 1e-6)
        #expect(rowError(x, far.y) <= 1e-6)
    }

    @Test("Range certificate: squares below float's overflow are certified, above are not", arguments: levels)
    func overflowThreshold(level: InstructionSet) {
        let below = gaussianRow(768, seed: 4, scale: 1e18)  // squares about 1e36, partials of 4 below 3.4e38
        let above = gaussianRow(768, seed: 4, scale: 1e20)  // squares overflow float
        let a = runRow(below, level: level), b = runRow(above, level: level)
        #expect(a.path == NK_LN_PATH_FAST)
        #expect(b.path == NK_LN_PATH_DOUBLE_MOMENTS)
        #expect(rowError(below, a.y) <= 1e-6)
        #expect(rowError(above, b.y) <= 1e-6)
    }

    @Test("Underflow certificate: a mean square above 2^-90 is certified, below it is not", arguments: levels)
    func underflowThreshold(level: InstructionSet) {
        let above = gaussianRow(768, seed: 5, scale: 0x1p-43)
        let below = gaussianRow(768, seed: 5, scale: 0x1p-47)
        let a = runRow(above, eps: 0, level: level), b = runRow(below, eps: 0, level: level)
        #expect(a.path == NK_LN_PATH_FAST)
        #expect(b.path == NK_LN_PATH_DOUBLE_MOMENTS)
        #expect(rowError(above, a.y, eps: 0) <= 1e-6)
        #expect(rowError(below, b.y, eps: 0) <= 1e-6)
    }

    @Test("A constant row takes the Double moments and comes out exactly the bias; NaN stays in its row", arguments: levels)
    func constantAndNaN(level: InstructionSet) {
        let x = [Float](repeating: 3.7, count: 100)
        let bias = (0..<100).map { Float($0) * 0.25 - 3 }
        let r = runRow(x, bias: bias, shift: Float(3.7).nextUp, level: level)
        #expect(r.path == NK_LN_PATH_DOUBLE_MOMENTS)
        #expect(r.y == bias)
        var bad = gaussianRow(50, seed: 6)
        bad[17] = .nan
        let nan = runRow(bad, shift: 0, level: level)
        #expect(nan.path == NK_LN_PATH_NONFINITE)
        #expect(nan.y.allSatisfy { $0.isNaN })
    }

    @Test("Affine certificate: a bias cancelling w·x̂ (issue 19's rows) takes the Double affine, within 1e-6", arguments: levels)
    func cancellingBias(level: InstructionSet) {
        // dim 2: y = ±0.199994 from w·x̂ = ±9999.8 and b = ±1e4.
        let x: [Float] = [0, 1], w: [Float] = [1e4, 1e4], b: [Float] = [1e4, -1e4]
        let r = runRow(x, weight: w, bias: b, level: level)
        #expect(r.path == NK_LN_PATH_DOUBLE_AFFINE)
        #expect(rowError(x, r.y, weight: w, bias: b) <= 1e-6, "\(r.y)")
        // dim 768, b = -w·x̂ (float64 x̂ rounded to float) at w = 4 and 64.
        let row = gaussianRow(768, seed: 8)
        var mean = 0.0
        for v in row { mean += Double(v) }
        mean /= 768
        var variance = 0.0
        for v in row { variance += (Double(v) - mean) * (Double(v) - mean) }
        let rstd = 1 / (variance / 768 + 1e-5).squareRoot()
        for scale: Float in [4, 64] {
            let w = [Float](repeating: scale, count: 768)
            let b = row.map { -Float(Double(scale) * (Double($0) - mean) * rstd) }
            let r = runRow(row, weight: w, bias: b, level: level)
            #expect(r.path == NK_LN_PATH_DOUBLE_AFFINE, "w \(scale)")
            #expect(rowError(row, r.y, weight: w, bias: b) <= 1e-6, "w \(scale)")
        }
    }

    @Test("Affine certificate: a bias cancelling a fifth of w·x̂ is certified, 99% of it is not", arguments: levels)
    func biasThreshold(level: InstructionSet) {
        let x = gaussianRow(768, seed: 9)
        let mean = x.reduce(0.0) { $0 + Double($1) } / 768
        let variance = x.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / 768
        let rstd = 1 / (variance + 1e-5).squareRoot()
        let w = [Float](repeating: 3, count: 768)
        for (fraction, path) in [(0.2, NK_LN_PATH_FAST), (0.99, NK_LN_PATH_DOUBLE_AFFINE)] {
            let b = x.map { -Float(fraction * 3 * (Double($0) - mean) * rstd) }
            let r = runRow(x, weight: w, bias: b, level: level)
            #expect(r.path == path, "fraction \(fraction)")
            #expect(rowError(x, r.y, weight: w, bias: b) <= 1e-6, "fraction \(fraction)")
        }
    }

    /// The centred form's bound (docs/numerics.md, "The centred form"), element by
    /// element, at its edge: on a fast row whose mean is within 2σ at an FMA level,
    /// y = fma(fma(x, r, Float(-mean·r)), w, b) is within u·(|w|·(2|x̂| + 2) + |y|) of
    /// w·(x - mean)·rstd + b in Double, with the row's own mean and rstd (the statistics'
    /// errors are the other bound's). Rows have means up to 2.1σ (so both forms run), any
    /// scale, and weights and biases over four decades.
    @Test("Centred form: every element within u·(|w|·(2|x̂| + 2) + |y|), the bound's edge", arguments: levels.filter { $0 != .baseline })
    func centredFormBound(level: InstructionSet) {
        var rng = TestRNG(seed: 0xce47_7ed)
        var worst = 0.0, centredRows = 0
        for _ in 0..<3000 {
            let n = [2, 3, 5, 17, 100, 768][Int.random(in: 0..<6, using: &rng)]
            let k = Double.random(in: -2.1...2.1, using: &rng), scale = pow(10, Double.random(in: -3...3, using: &rng))
            let z = gaussianRow(n, seed: rng.next())
            let x = z.map { Float(scale * (k + Double($0))) }
            let w = (0..<n).map { _ in Float(Double.random(in: -2...2, using: &rng) * pow(10, Double.random(in: -2...2, using: &rng))) }
            let b = (0..<n).map { _ in Float(Double.random(in: -1...1, using: &rng) * pow(10, Double.random(in: -2...2, using: &rng))) }
            let r = runRow(x, weight: w, bias: b, level: level)
            guard r.path == NK_LN_PATH_FAST else { continue }
            let mean = r.stats[0], rstd = r.stats[1]
            let variance = 1 / (rstd * rstd) - 1e-5
            // Well inside the kernel's own test (mean² <= 4·variance), so the row surely took this form.
            guard mean * mean <= 3.9 * variance else { continue }
            centredRows += 1
            for i in 0..<n {
                let xhat = (Double(x[i]) - mean) * rstd
                let exact = Double(w[i]) * xhat + Double(b[i])
                let bound = 0x1p-24 * (abs(Double(w[i])) * (2 * abs(xhat) + 2) + abs(Double(r.y[i])))
                let ratio = abs(Double(r.y[i]) - exact) / bound
                worst = max(worst, ratio)
                #expect(ratio <= 1, "element \(i) of a row of \(n), mean \(k)σ, \(level)")
            }
        }
        #expect(centredRows > 1000)
        print("ForwardFastPathTests.centredFormBound \(level): \(centredRows) rows, worst error / bound \(worst)")
    }

    /// The sampled shift (docs/numerics.md, "The shift"): ordinary rows, short and long,
    /// are certified on it and match the float64 reference; a row whose sampled elements
    /// sit far from the rest is refused, leaving the statistics (and, in place, the row)
    /// untouched, and the full path then gets it right.
    @Test("Sampled shift: ordinary rows are taken, a row whose sample misleads is refused", arguments: levels)
    func sampledShift(level: InstructionSet) {
        for (i, n) in [1, 3, 17, 31, 32, 33, 768, 1000, 4096].enumerated() {
            for mean: Float in [0, 1, 100] {
                let x = gaussianRow(n, seed: UInt64(i + 7), mean: mean)
                let w = (0..<n).map { Float(0.5 + Double($0 % 7) / 7) }, b = (0..<n).map { Float($0 % 5) / 50 - 0.05 }
                let r = runSampled(x, weight: w, bias: b, level: level)
                if n == 1 {
                    // A single element: variance 0 is refused by the fast certificate.
                    #expect(r.status == 1, "n 1 \(level)")
                    continue
                }
                #expect(r.status == 0, "n \(n) mean \(mean) \(level)")
                #expect(rowError(x, r.y, weight: w, bias: b) <= 1e-6, "n \(n) mean \(mean) \(level)")
                let full = runRow(x, weight: w, bias: b, level: level)
                #expect(rowError(x, full.y, weight: w, bias: b) <= 1e-6)
                let inPlace = runSampled(x, weight: w, bias: b, inPlace: true, level: level)
                #expect(inPlace.status == 0 && inPlace.y == r.y, "in place n \(n) \(level)")
            }
        }
        // n = 4096: set the 32 sampled elements (four runs of 8) to 1000 in a row of
        // N(0, 1): the sampled mean is 1000, the row's about 7.8 with σ about 88, so the
        // shift is 11σ off and the variance's bound (about 127·6u of it) is past what the
        // output's certificate allows (64u): refused, with a margin of 7.
        let n = 4096
        var x = gaussianRow(n, seed: 99)
        for i in sampledPositions(n) { x[i] = 1000 }
        let refused = runSampled(x, level: level)
        #expect(refused.status == 1, "\(level)")
        #expect(refused.stats[0].isNaN && refused.stats[1].isNaN, "statistics untouched \(level)")
        let inPlace = runSampled(x, inPlace: true, level: level)
        #expect(inPlace.status == 1 && inPlace.y == x, "in place, a refusal leaves the row \(level)")
        let full = runNormalized(x, level: level)
        #expect(!full.sampled && rowError(x, full.y) <= 1e-6, "\(level)")
        // A non-finite sample is refused too; the full path makes the row NaN.
        var bad = gaussianRow(n, seed: 5)
        bad[0] = .infinity
        #expect(runSampled(bad, level: level).status == 1)
        let badOut = runNormalized(bad, level: level).y
        #expect(badOut.allSatisfy { $0.isNaN })
    }

    /// Random rows from the hard-row catalogue and from the thresholds above, with random
    /// affine transforms: every one within 1e-6 at every level. NORMKIT_FAST_PATH_ROWS sets
    /// the count (CI: the default; docs/numerics.md records one run of 10^6).
    /// The output certificate bounds its error from max|w| and max|b| (docs/numerics.md, "The
    /// affine certificate"); a stale value would make it unsound, so the layer keeps them
    /// with its parameters through every kind of change.
    @Test("The certificate's max|w| and max|b| follow every change of the parameters")
    func parameterLimitsFollowTheParameters() throws {
        var layer = try LayerNorm(dim: 8)
        #expect(layer.weightMax == 1 && layer.biasMax == 0)
        layer.weight = try Tensor(shape: [8], scalars: [1, -7, 2, 0, 0, 0, 0, 3])
        #expect(layer.weightMax == 7)
        layer.bias.withUnsafeMutableBufferPointer { $0[5] = -250 }
        #expect(layer.biasMax == 250)
        layer.weight.withUnsafeMutableBufferPointer { $0[1] = .nan }
        #expect(layer.weightMax.isNaN)
        layer.weight = Tensor(shape: [8], repeating: 0.5)
        #expect(layer.weightMax == 0.5)
        // A bias of 1e4 cancelling w·x̂ at one element: correct with the limits the layer keeps.
        let x = gaussianRow(8, seed: 12)
        layer.bias = Tensor(shape: [8], repeating: 0)
        let reference = try Reference.layerNormDouble(Tensor(shape: [1, 8], scalars: x), weight: layer.weight,
                                                      bias: layer.bias, eps: layer.eps)
        layer.weight.withUnsafeMutableBufferPointer { $0[2] = 2e4 }
        layer.bias.withUnsafeMutableBufferPointer { $0[2] = -Float(2e4 * reference[2] / 0.5) + 0.25 }
        let y = try layer.forward(Tensor(shape: [1, 8], scalars: x))
        #expect(rowError(x, y.scalars, weight: layer.weight.scalars, bias: layer.bias.scalars) <= 1e-6)
    }

    @Test("Property: catalogue and threshold rows, every path, within 1e-6")
    func property() {
        let rows = ProcessInfoLite.integer("NORMKIT_FAST_PATH_ROWS") ?? 1500
        var rng = TestRNG(seed: 0x5eed_f457)
        var worst = 0.0
        var paths = [Int](repeating: 0, count: 4)
        var sampled = 0
        let kinds = Reference.HardRow.allCases
        for r in 0..<rows {
            let level = Self.levels[r % Self.levels.count]
            let n = [1, 2, 3, 5, 17, 64, 128, 257, 768, 1024][Int.random(in: 0..<10, using: &rng)]
            var x: [Float]
            switch Int.random(in: 0..<4, using: &rng) {
            case 0, 1: x = kinds[Int.random(in: 0..<kinds.count, using: &rng)].values(dim: n, seed: rng.next())
            case 2:  // near the range thresholds
                let e = Float([-47, -45, -44, -43, 17, 18, 19, 20][Int.random(in: 0..<8, using: &rng)])
                x = gaussianRow(n, seed: rng.next(), scale: e < 0 ? powf(2, e) : powf(10, e))
            default:  // large means: the shift's accuracy against the spread
                x = gaussianRow(n, seed: rng.next(), mean: powf(10, Float.random(in: 0...7, using: &rng)))
            }
            var w: [Float]? = nil, b: [Float]? = nil
            switch Int.random(in: 0..<4, using: &rng) {
            case 0: break
            case 1:
                w = (0..<n).map { _ in Float.random(in: -2...2, using: &rng) }
                b = (0..<n).map { _ in Float.random(in: -1...1, using: &rng) }
            case 2:
                w = (0..<n).map { _ in Float.random(in: 1e3...1e4, using: &rng) }
                b = (0..<n).map { _ in Float.random(in: -1e4...1e4, using: &rng) }
            default:  // bias cancelling a random share of w·x̂
                let f = Double.random(in: 0.9...1, using: &rng)
                var mean = 0.0
                for v in x { mean += Double(v) }
                mean /= Double(n)
                var variance = 0.0
                for v in x { variance += (Double(v) - mean) * (Double(v) - mean) }
                let rstd = 1 / (variance / Double(n) + 1e-5).squareRoot()
                let scale = Float.random(in: 1...100, using: &rng)
                w = [Float](repeating: scale, count: n)
                b = x.map { finiteFloat(-f * Double(scale) * (Double($0) - mean) * rstd) }
            }
            let result = runNormalized(x, weight: w, bias: b, level: level)
            paths[Int(result.path)] += 1
            if result.sampled { sampled += 1 }
            let e = rowError(x, result.y, weight: w, bias: b)
            worst = max(worst, e)
            #expect(e <= 1e-6, "row \(r) n \(n) path \(result.path) \(level)")
        }
        print("ForwardFastPathTests.property: \(rows) rows, worst \(worst), paths fast/moments/affine/non-finite \(paths), \(sampled) taken on the sampled shift")
    }
}

/// An integer environment variable.
private enum ProcessInfoLite {
    static func integer(_ name: String) -> Int? { getenv(name).flatMap { Int(String(cString: $0)) } }
}
