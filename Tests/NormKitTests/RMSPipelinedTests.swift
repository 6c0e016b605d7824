// RMSNorm's pipelined forward (`forward_rows`, `add_forward_rows`, `forward_rows_half`:
// each row's float sum of squares beside the row before's output pass) must be RMSKernel's
// row step, row by row: the same rows refused (and those left unwritten), the same y bits
// on the others, whatever sits next to a row. The row step is spelled out here from the
// one-row kernels (`row_sumsq_f`, the certificate, r = 1/sqrt(Σ/n + eps), `scale`).

import CNormKernels
@testable import NormKit
import Testing

@Suite("RMSNorm pipelined forward")
struct RMSPipelinedTests {
    static let dims = Sanitizer.any ? [1, 17, 128, 129, 768] : [1, 5, 16, 17, 31, 32, 33, 128, 129, 200, 768, 1000, 4099]

    /// Rows of every outcome, each kind next to every other (a refused row first, last and
    /// twice in a row): certified (random, an offset, equal terms, a row scaled to just
    /// above the certificate's underflow edge) and refused (zeros, a row scaled below the
    /// edge, squares that overflow float, a NaN, an infinity).
    static func batch(dim n: Int) -> [[Float]] {
        let noise = Tensor.randomNormal([n], seed: UInt64(40 + n)).scalars
        var nan = noise, inf = noise
        nan[n / 2] = .nan
        inf[n - 1] = -.infinity
        let kinds: [[Float]] = [
            noise, noise.map { 1000 + $0 }, [Float](repeating: 1.15625 + 0x1p-18, count: n),
            noise.map { $0 * 0x1p-55 },
            [Float](repeating: 0, count: n), noise.map { $0 * 0x1p-75 }, noise.map { $0 * 0x1p70 }, nan, inf,
        ]
        var rows: [[Float]] = []
        for (i, a) in kinds.enumerated() {
            rows.append(a)
            rows.append(kinds[(i * 7 + 3) % kinds.count])
        }
        return [kinds[4]] + rows + kinds.reversed()
    }

    /// RMSKernel's row step on one row: nil when the float sum is refused.
    static func expectedRow(_ k: nk_rmsnorm_kernels, _ x: ArraySlice<Float>, eps: Double, weight: [Float],
                            offset: Float) -> [Float]? {
        let x = Array(x), n = x.count
        let s = k.row_sumsq_f(x, n)
        guard nk_rms_sum_certified(s, n) != 0 else { return nil }
        let r = 1 / (s / Double(n) + eps).squareRoot()
        var y = [Float](repeating: 0, count: n)
        k.scale(x, &y, n, Float(r), weight, offset)
        return y
    }

    static let guardValue = Float(bitPattern: 0x7fc0_1234)
    static let guardStatistic = Double(bitPattern: 0x7ff8_0000_0000_1234)

    /// The 1/rms RMSKernel keeps for a certified row (`savedReciprocal`: from the Double sum).
    static func keptReciprocal(_ k: nk_rmsnorm_kernels, _ x: ArraySlice<Float>, eps: Double) -> Double {
        let x = Array(x)
        return 1 / (k.row_sumsq(x, x.count) / Double(x.count) + eps).squareRoot()
    }

    /// `rrms` from a pipelined call over the rows of `input`: each certified row's kept
    /// 1/rms bitwise, each refused row's left as it was.
    static func checkKept(_ k: nk_rmsnorm_kernels, input: [Float], rrms: [Double], refused: [Int], rows: Int, dim: Int,
                          eps: Double, _ what: String) {
        for r in 0 ..< rows {
            let want = refused.contains(r) ? guardStatistic
                                           : keptReciprocal(k, input[r * dim ..< (r + 1) * dim], eps: eps)
            #expect(rrms[r].bitPattern == want.bitPattern, "\(what) row \(r): kept 1/rms differs")
        }
    }

    /// `y` (the pipelined output over `rows`, written over `original`) against the row
    /// step on `input`: the same refused rows; certified rows bitwise, refused rows left
    /// as they were, nothing past the last row.
    static func check(
        _ k: nk_rmsnorm_kernels, input: [Float], y: [Float], original: [Float], refused: [Int], rows: Int, dim: Int,
        eps: Double, weight: [Float], offset: Float, _ what: String
    ) {
        var expectedRefused: [Int] = []
        for r in 0 ..< rows {
            let span = r * dim ..< (r + 1) * dim
            if let e = expectedRow(k, input[span], eps: eps, weight: weight, offset: offset) {
                #expect(y[span].map(\.bitPattern) == e.map(\.bitPattern), "\(what) row \(r): y differs")
            } else {
                expectedRefused.append(r)
                #expect(y[span].map(\.bitPattern) == original[span].map(\.bitPattern), "\(what) row \(r): refused, but written")
            }
        }
        #expect(refused == expectedRefused, "\(what): refused rows differ")
        #expect(y[(rows * dim)...].allSatisfy { $0.bitPattern == guardValue.bitPattern }, "\(what): wrote past y")
        if dim > 1 { #expect(!expectedRefused.isEmpty && expectedRefused.count < rows, "\(what): no mix") }
    }

    @Test(arguments: InstructionSet.supported)
    func rowsEqualTheRowStep(level: InstructionSet) {
        let k = Kernels.rmsNorm(at: level)
        for dim in Self.dims {
            let batch = Self.batch(dim: dim), rows = batch.count
            let x = batch.flatMap { $0 }
            let random = Tensor.randomNormal([dim], mean: 1, standardDeviation: 0.2, seed: 7).scalars
            // Weights whose sum with the offset is not themselves, bit for bit: -0 (0 + -0 is +0)
            // and a signalling NaN (the sum quietens it). The multi-row kernel multiplies by w
            // itself only when the sum is w for every weight (nk_rms_offset_is_exact); with
            // these it must keep the sum, or the -0 columns' outputs change sign.
            var signed = random
            for j in stride(from: 0, to: dim, by: 3) { signed[j] = j % 2 == 0 ? -0.0 : 0.0 }
            if dim > 2 { signed[dim - 1] = Float(bitPattern: 0x7fa0_0000) }
            let offsets: [Float] = [0, 1, -0.0]
            let cases: [(String, [Float], Float)] = [("random", random), ("signed zeros", signed)].flatMap { kind in
                offsets.map { (kind.0, kind.1, $0) }
            }
            for (weightKind, weight, offset) in cases {
                let what = "\(level) dim \(dim) offset \(offset) \(weightKind) weights"
                // Apart, into y with guard elements after it, keeping 1/rms.
                var y = [Float](repeating: Self.guardValue, count: x.count + 16)
                var refused = [Int](repeating: -1, count: rows)
                var rrms = [Double](repeating: Self.guardStatistic, count: rows)
                let count = k.forward_rows(x, &y, rows, dim, 1e-6, weight, offset, &rrms, &refused)
                Self.check(k, input: x, y: y, original: y, refused: Array(refused[..<count]), rows: rows, dim: dim,
                           eps: 1e-6, weight: weight, offset: offset, what)
                Self.checkKept(k, input: x, rrms: rrms, refused: Array(refused[..<count]), rows: rows, dim: dim,
                               eps: 1e-6, what)
                // In place: refused rows keep their input.
                var inPlace = x + [Float](repeating: Self.guardValue, count: 16)
                let countInPlace = inPlace.withUnsafeMutableBufferPointer { p in
                    k.forward_rows(p.baseAddress!, p.baseAddress!, rows, dim, 1e-6, weight, offset, nil, &refused)
                }
                Self.check(k, input: x, y: inPlace, original: x + [Float](repeating: Self.guardValue, count: 16),
                           refused: Array(refused[..<countInPlace]), rows: rows, dim: dim, eps: 1e-6, weight: weight,
                           offset: offset, "\(what) in place")
            }
        }
    }

    /// The fused add: every row's sum stored (refused rows too), and the rows as the row
    /// step on the sum, for the aliasings RMSKernel.runAdding allows.
    @Test(arguments: InstructionSet.supported)
    func addRowsEqualTheRowStepOnTheSum(level: InstructionSet) {
        let k = Kernels.rmsNorm(at: level)
        for dim in Self.dims {
            let batch = Self.batch(dim: dim), rows = batch.count
            let x = batch.flatMap { $0 }
            let residual = Tensor.randomNormal([x.count], seed: 9).scalars
            let sum = zip(x, residual).map { $0 + $1 }
            let weight = Tensor.randomNormal([dim], mean: 1, standardDeviation: 0.2, seed: 8).scalars
            let pad = [Float](repeating: Self.guardValue, count: 16)
            for aliasing in ["apart", "sum = residual", "sum = residual, y = x", "y = sum"] {
                var a = x + pad, b = residual + pad, s = [Float](repeating: .nan, count: x.count) + pad
                var y = [Float](repeating: Self.guardValue, count: x.count + 16)
                var refused = [Int](repeating: -1, count: rows)
                var rrms = [Double](repeating: Self.guardStatistic, count: rows)
                let originalY: [Float]
                let count = a.withUnsafeMutableBufferPointer { ap in
                    b.withUnsafeMutableBufferPointer { bp in
                        s.withUnsafeMutableBufferPointer { sp in
                            y.withUnsafeMutableBufferPointer { yp in
                                let (xP, rP) = (ap.baseAddress!, bp.baseAddress!)
                                switch aliasing {
                                case "apart":
                                    return k.add_forward_rows(xP, rP, sp.baseAddress!, yp.baseAddress!, rows, dim, 1e-6,
                                                              weight, 0, &rrms, &refused)
                                case "sum = residual":
                                    return k.add_forward_rows(xP, rP, rP, yp.baseAddress!, rows, dim, 1e-6, weight, 0,
                                                              &rrms, &refused)
                                case "sum = residual, y = x":
                                    return k.add_forward_rows(xP, rP, rP, xP, rows, dim, 1e-6, weight, 0, nil, &refused)
                                default:
                                    return k.add_forward_rows(xP, rP, sp.baseAddress!, sp.baseAddress!, rows, dim,
                                                              1e-6, weight, 0, nil, &refused)
                                }
                            }
                        }
                    }
                }
                let (storedSum, out): ([Float], [Float])
                switch aliasing {
                case "apart": (storedSum, out, originalY) = (s, y, [Float](repeating: Self.guardValue, count: x.count + 16))
                case "sum = residual": (storedSum, out, originalY) = (b, y, [Float](repeating: Self.guardValue, count: x.count + 16))
                case "sum = residual, y = x": (storedSum, out, originalY) = (b, a, x + pad)
                default: (storedSum, out, originalY) = (s, s, sum + pad)
                }
                let what = "\(level) dim \(dim) \(aliasing)"
                if aliasing != "y = sum" {
                    #expect(storedSum[..<x.count].map(\.bitPattern) == sum.map(\.bitPattern), "\(what): the sum differs")
                }
                Self.check(k, input: sum, y: out, original: originalY, refused: Array(refused[..<count]), rows: rows,
                           dim: dim, eps: 1e-6, weight: weight, offset: 0, what)
                if aliasing == "apart" || aliasing == "sum = residual" {
                    // Kept from the sum (y is written a row later, and here is not the sum).
                    Self.checkKept(k, input: sum, rrms: rrms, refused: Array(refused[..<count]), rows: rows, dim: dim,
                                   eps: 1e-6, what)
                }
            }
        }
    }

    /// Rows of bfloat16 and float16 against the one-row half kernel `forward_row_half`:
    /// the same outcome per row, the same bits, refused rows unwritten; apart and in place.
    @Test(arguments: [NK_ELEM_BF16, NK_ELEM_F16])
    func halfRowsEqualTheOneRowKernel(format: Int32) {
        for level in InstructionSet.supported {
            let k = Kernels.rmsNorm(at: level)
            for dim in Self.dims {
                let batch = Self.batch(dim: dim), rows = batch.count
                let wide = batch.flatMap { $0 }
                let x: [UInt16] = format == NK_ELEM_BF16 ? wide.map { BFloat16($0).bitPattern }
                                                         : wide.map { HalfRowKernelTests.float16Bits($0) }
                let weight = Tensor.randomNormal([dim], mean: 1, standardDeviation: 0.2, seed: 6).scalars
                var expected = [UInt16](repeating: 0xffff, count: x.count + 16)
                var expectedRefused: [Int] = []
                for r in 0 ..< rows {
                    let refused = x.withUnsafeBufferPointer { xp in
                        expected.withUnsafeMutableBufferPointer { yp in
                            k.forward_row_half(xp.baseAddress! + r * dim, yp.baseAddress! + r * dim, dim, format, 1e-6,
                                               weight, 0)
                        }
                    }
                    if refused != 0 { expectedRefused.append(r) }
                }
                let what = "\(level) format \(format) dim \(dim)"
                var y = [UInt16](repeating: 0xffff, count: x.count + 16)
                var refused = [Int](repeating: -1, count: rows)
                let count = k.forward_rows_half(x, &y, rows, dim, format, 1e-6, weight, 0, &refused)
                #expect(Array(refused[..<count]) == expectedRefused, "\(what): refused rows differ")
                #expect(y == expected, "\(what): y differs (or a refused row, or past the end, was written)")
                var inPlace = x
                let countInPlace = inPlace.withUnsafeMutableBufferPointer { p in
                    k.forward_rows_half(p.baseAddress!, p.baseAddress!, rows, dim, format, 1e-6, weight, 0, &refused)
                }
                #expect(Array(refused[..<countInPlace]) == expectedRefused, "\(what) in place: refused rows differ")
                for r in 0 ..< rows {
                    let span = r * dim ..< (r + 1) * dim
                    let want = expectedRefused.contains(r) ? x[span] : expected[span]
                    #expect(inPlace[span] == want, "\(what) in place row \(r)")
                }
                if dim > 1 { #expect(!expectedRefused.isEmpty && expectedRefused.count < rows, "\(what): no mix") }
            }
        }
    }

    /// Through the public API (a call small enough to pipeline): a tensor's forward, and
    /// the fused add, equal the same rows normalised one call per row, bitwise.
    @Test func engineMatchesOneRowCalls() throws {
        for level in InstructionSet.supported {
            try InstructionSet.with(level) {
                for dim in [17, 768] {
                    var norm = try RMSNorm(dim: dim)
                    norm.weight = try Tensor(shape: [dim], scalars:
                        Tensor.randomNormal([dim], mean: 1, standardDeviation: 0.2, seed: 5).scalars)
                    let batch = Self.batch(dim: dim)
                    #expect(RMSKernel.pipelines(rows: batch.count, length: dim))
                    let x = try Tensor(shape: [batch.count, dim], scalars: batch.flatMap { $0 })
                    let y = try norm.forward(x)
                    let residual = Tensor.randomNormal([batch.count, dim], seed: 4)
                    var h = residual
                    var fused = Tensor.zeros([batch.count, dim])
                    try norm.forward(x, addingTo: &h, into: &fused)
                    let (trained, statistics) = try norm.forwardForTraining(x)
                    #expect(trained.scalars.map(\.bitPattern) == y.scalars.map(\.bitPattern), "\(level) dim \(dim): training y")
                    for (r, row) in batch.enumerated() {
                        let span = r * dim ..< (r + 1) * dim
                        let one = try norm.forward(Tensor(shape: [1, dim], scalars: row))
                        #expect(y.scalars[span].map(\.bitPattern) == one.scalars.map(\.bitPattern), "\(level) dim \(dim) row \(r)")
                        let oneKept = try norm.forwardForTraining(Tensor(shape: [1, dim], scalars: row)).statistics
                        #expect(statistics.reciprocalRootMeanSquares[r].bitPattern
                                    == oneKept.reciprocalRootMeanSquares[0].bitPattern, "\(level) dim \(dim) row \(r): kept 1/rms")
                        var hr = try Tensor(shape: [1, dim], scalars: Array(residual.scalars[span]))
                        var out = Tensor.zeros([1, dim])
                        try norm.forward(Tensor(shape: [1, dim], scalars: row), addingTo: &hr, into: &out)
                        #expect(h.scalars[span].map(\.bitPattern) == hr.scalars.map(\.bitPattern), "\(level) dim \(dim) row \(r): h")
                        #expect(fused.scalars[span].map(\.bitPattern) == out.scalars.map(\.bitPattern), "\(level) dim \(dim) row \(r): fused y")
                    }
                }
            }
        }
    }
}
