// LayerNorm's pipelined forward (`forward_rows_sampled`: each row's output pass
// interleaved with the next row's moments) must be `forward_row_sampled` row by row: the
// same rows refused, the same y bits and statistics on the others, whatever sits next to
// a row (a refused row, a scaled row, a row in the plain form).

import CNormKernels
@testable import NormKit
import Testing

@Suite("Pipelined forward")
struct PipelinedForwardTests {
    /// The half kernels' hard and fallback rows in an order that puts every kind next to
    /// every other (a refused row first, last, and twice in a row), plus rows that take
    /// the scaled form (a spread near float's limits) and the plain form (mean far from 0).
    static func batch(dim: Int) -> [[Float]] {
        let kinds = HalfRowKernelTests.rows(dim: dim)
        let noise = Tensor.randomNormal([dim], seed: 41).scalars
        let extra = [noise.map { $0 * 0x1p-110 }, noise.map { $0 * 0x1p100 }, noise.map { 1000 + $0 }]
        let all = kinds + extra
        var rows: [[Float]] = []
        for (i, a) in all.enumerated() {
            rows.append(a)
            rows.append(all[(i * 7 + 3) % all.count])
        }
        return rows + all.reversed()
    }

    /// The pipelined kernel against the one-row kernel on `x`, `rows` rows of `dim`
    /// elements (float or 16-bit), with and without statistics: the same rows refused,
    /// and on every other row the same y bits and statistics; nothing written past the
    /// last row. `row(x, y, stats)` is the one-row kernel on one row;
    /// `pipelined(x, y, mean, rstd, refused)` the pipelined one on all of them. Returns
    /// the rows the one-row kernel refused.
    static func expectPipelinedEqualsRowByRow<E>(
        _ x: [E], rows: Int, dim: Int, guardValue: E, bits: (E) -> UInt32, _ label: String,
        row: (UnsafePointer<E>, UnsafeMutablePointer<E>, UnsafeMutablePointer<Double>) -> Int32,
        pipelined: (UnsafePointer<E>, UnsafeMutablePointer<E>, UnsafeMutablePointer<Double>?,
                    UnsafeMutablePointer<Double>?, UnsafeMutablePointer<Int>) -> Int
    ) -> [Int] {
        // Row by row.
        var expected = x
        var expectedStats = [[Double]](repeating: [.nan, .nan], count: rows)
        var expectedRefused: [Int] = []
        x.withUnsafeBufferPointer { xp in
            expected.withUnsafeMutableBufferPointer { yp in
                for r in 0 ..< rows {
                    let refused = expectedStats[r].withUnsafeMutableBufferPointer { stats in
                        row(xp.baseAddress! + r * dim, yp.baseAddress! + r * dim, stats.baseAddress!)
                    }
                    if refused != 0 { expectedRefused.append(r) }
                }
            }
        }
        // Pipelined, with and without statistics, into y with guard elements after it.
        for wantStats in [true, false] {
            var y = [E](repeating: guardValue, count: x.count + 16)
            var mean = [Double](repeating: .nan, count: rows), rstd = mean
            var refused = [Int](repeating: -1, count: rows)
            let count = x.withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer { yp in
                    mean.withUnsafeMutableBufferPointer { m in
                        rstd.withUnsafeMutableBufferPointer { s in
                            refused.withUnsafeMutableBufferPointer { f in
                                pipelined(xp.baseAddress!, yp.baseAddress!, wantStats ? m.baseAddress : nil,
                                          wantStats ? s.baseAddress : nil, f.baseAddress!)
                            }
                        }
                    }
                }
            }
            let what = "\(label) stats \(wantStats)"
            #expect(Array(refused[..<count]) == expectedRefused, "\(what): refused rows differ")
            #expect(y[x.count...].allSatisfy { bits($0) == bits(guardValue) }, "\(what): wrote past y")
            for r in 0 ..< rows where !expectedRefused.contains(r) {
                let span = r * dim ..< (r + 1) * dim
                #expect(y[span].map(bits) == expected[span].map(bits), "\(what) row \(r): y differs")
                if wantStats {
                    #expect([mean[r], rstd[r]].map(\.bitPattern) == expectedStats[r].map(\.bitPattern),
                            "\(what) row \(r): statistics differ")
                }
            }
        }
        return expectedRefused
    }

    /// ``expectPipelinedEqualsRowByRow`` on float rows: `forward_rows_sampled` against
    /// `forward_row_sampled` with the parameters `p`, at the level of the kernels `k`.
    static func expectFloatRowsEqualRowByRow(
        _ x: [Float], rows: Int, dim: Int, kernels k: nk_layernorm_kernels, parameters p: ForwardParameters,
        _ label: String
    ) -> [Int] {
        expectPipelinedEqualsRowByRow(
            x, rows: rows, dim: dim, guardValue: Float(bitPattern: 0x7fc0_1234), bits: \.bitPattern, label,
            row: { x, y, stats in
                k.forward_row_sampled(x, y, dim, p.eps, p.weight, p.bias, p.weightMax, p.biasMax, stats)
            },
            pipelined: { x, y, mean, rstd, refused in
                k.forward_rows_sampled(x, y, rows, dim, p.eps, p.weight, p.bias, p.weightMax, p.biasMax, mean, rstd,
                                       refused)
            })
    }

    @Test func rowsEqualTheOneRowKernel() throws {
        for level in InstructionSet.supported {
            let k = Kernels.layerNorm(at: level)
            for dim in [1, 5, 16, 17, 64, 65, 100, 128, 129, 256, 257, 513, 768, 1000, 1025, 4099] {
                let layer = try HalfRowKernelTests.layer(dim: dim)
                let rows = Self.batch(dim: dim)
                layer.withParameters(level) { p in
                    let refused = Self.expectFloatRowsEqualRowByRow(
                        rows.flatMap { $0 }, rows: rows.count, dim: dim, kernels: k, parameters: p, "\(level) dim \(dim)")
                    // Both outcomes sit side by side (at dim 1 every row is constant: all refused).
                    if dim > 1 {
                        #expect(!refused.isEmpty && refused.count < rows.count, "dim \(dim): no mix")
                    }
                }
            }
        }
    }

    /// Short rows take the batched body (a batch as many rows as a double vector has lanes:
    /// 4, 8 or 16), and rows of up to 2 KB the pipelined batches (dim 300; each batch's
    /// output passes beside the next batch's moments): every row count from 1 to 35 (whole
    /// batches and a partial last one),
    /// with a row the sampled path refuses (a NaN) at a different position each time, and
    /// none at every fifth count, against the one-row kernel. (The layer's affine makes the
    /// output certificate refuse a few of these short rows too: the one-row kernel's refusals
    /// are what the batched body must reproduce.)
    @Test func batchedRowsAtEveryCount() throws {
        for level in InstructionSet.supported {
            let k = Kernels.layerNorm(at: level)
            for dim in [17, 100, 300] {
                let layer = try HalfRowKernelTests.layer(dim: dim)
                let noise = Tensor.randomNormal([35 * dim], mean: 1, seed: 7).scalars
                for rows in 1 ... 35 {
                    var x = Array(noise[..<(rows * dim)])
                    let nanRow = rows % 5 == 0 ? nil : (rows * 7 + 3) % rows
                    if let r = nanRow { x[r * dim + dim / 2] = .nan }
                    layer.withParameters(level) { p in
                        let refused = Self.expectFloatRowsEqualRowByRow(
                            x, rows: rows, dim: dim, kernels: k, parameters: p, "\(level) dim \(dim) rows \(rows)")
                        if let r = nanRow { #expect(refused.contains(r), "\(level) dim \(dim) rows \(rows)") }
                        #expect(refused.count < rows || rows == 1, "\(level) dim \(dim) rows \(rows): all refused")
                    }
                }
            }
        }
    }

    /// Rows swept across each threshold of the two certificates, which the batched body
    /// evaluates a row per vector lane: a mean of 1000 over spreads from 100 down to 10^-6
    /// (the shift, a float, ever more standard deviations off the mean: the moments'
    /// e_var <= var/4 and the 64u limits on ρ and μ, then the output's bound, then a
    /// constant row), spreads from 2^-50 to 2^-40 (the mean
    /// square's 2^-90) and from 10^16 to 10^21 (a square's overflow), and rows moving away
    /// from the one whose w·x̂ the layer's bias cancels (the output certificate's bound).
    /// Each sweep must straddle its threshold: some rows taken, some refused.
    @Test func thresholdRowsEqualTheOneRowKernel() throws {
        for level in InstructionSet.supported {
            let k = Kernels.layerNorm(at: level)
            for dim in [40, 100, 128, 300] {
                let layer = try HalfRowKernelTests.layer(dim: dim)
                let noise = Tensor.randomNormal([dim], seed: 3).scalars
                var sweeps: [(String, [[Float]])] = []
                sweeps.append(("mean", (0 ..< 80).map { i in noise.map { 1000 + $0 * 100 * powf(10, -Float(i) / 10) } }))
                sweeps.append(("small", (0 ..< 41).map { i in noise.map { $0 * powf(2, -50 + Float(i) / 4) } }))
                sweeps.append(("large", (0 ..< 41).map { i in noise.map { $0 * powf(10, 16 + Float(i) / 8) } }))
                // A layer whose bias cancels w·x̂ of one row to 10^-6: rows moving away from
                // it (by t = 10^-3 to about 7 of a second row) cross the output's bound.
                var cancelling = layer
                let base = Tensor.randomNormal([dim], seed: 99).scalars
                let mean = base.reduce(0.0) { $0 + Double($1) } / Double(dim)
                let sd = (base.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(dim)).squareRoot()
                let w = layer.weight.scalars
                cancelling.bias = try Tensor(shape: [dim], scalars: (0 ..< dim).map {
                    Float(-Double(w[$0]) * (Double(base[$0]) - mean) / sd * 0.999_999)
                })
                let moving = (0 ..< 192).map { i in (0 ..< dim).map { base[$0] + 1e-3 * powf(1.05, Float(i)) * noise[$0] } }
                for (name, rows, layer) in sweeps.map({ ($0.0, $0.1, layer) }) + [("affine", moving, cancelling)] {
                    layer.withParameters(level) { p in
                        let refused = Self.expectFloatRowsEqualRowByRow(
                            rows.flatMap { $0 }, rows: rows.count, dim: dim, kernels: k, parameters: p,
                            "\(level) dim \(dim) \(name)")
                        #expect(!refused.isEmpty && refused.count < rows.count,
                                "\(level) dim \(dim) \(name): \(refused.count) of \(rows.count) refused")
                    }
                }
            }
        }
    }

    /// The same for rows of bfloat16 and float16 against `forward_row_sampled_half`.
    @Test(arguments: [NK_ELEM_BF16, NK_ELEM_F16])
    func halfRowsEqualTheOneRowKernel(format: Int32) throws {
        for level in InstructionSet.supported {
            let k = Kernels.layerNorm(at: level)
            for dim in [1, 17, 128, 256, 512, 513, 768, 4099] {
                let layer = try HalfRowKernelTests.layer(dim: dim)
                let rows = Self.batch(dim: dim)
                let wide = rows.flatMap { $0 }
                let x: [UInt16] = format == NK_ELEM_BF16 ? wide.map { BFloat16($0).bitPattern }
                                                         : wide.map { HalfRowKernelTests.float16Bits($0) }
                layer.withParameters(level) { p in
                    _ = Self.expectPipelinedEqualsRowByRow(
                        x, rows: rows.count, dim: dim, guardValue: 0xffff, bits: { UInt32($0) },
                        "\(level) format \(format) dim \(dim)",
                        row: { x, y, stats in
                            k.forward_row_sampled_half(x, y, dim, format, p.eps, p.weight, p.bias, p.weightMax,
                                                       p.biasMax, stats)
                        },
                        pipelined: { x, y, mean, rstd, refused in
                            k.forward_rows_sampled_half(x, y, rows.count, dim, format, p.eps, p.weight, p.bias,
                                                        p.weightMax, p.biasMax, mean, rstd, refused)
                        })
                }
            }
        }
    }

    /// Through the public API: a tensor's forward (pipelined: y is not x) equals the same
    /// rows normalised in place (one row at a time), bitwise.
    @Test func engineMatchesInPlace() throws {
        for level in InstructionSet.supported {
            try InstructionSet.with(level) {
                for dim in [17, 768] {
                    let layer = try HalfRowKernelTests.layer(dim: dim)
                    let rows = Self.batch(dim: dim)
                    let x = try Tensor(shape: [rows.count, dim], scalars: rows.flatMap { $0 })
                    let y = try layer.forward(x)
                    var inPlace = x.scalars
                    try inPlace.withUnsafeMutableBufferPointer { p in try layer.forward(UnsafeBufferPointer(p), into: p) }
                    #expect(y.scalars.map(\.bitPattern) == inPlace.map(\.bitPattern), "\(level) dim \(dim)")
                }
            }
        }
    }
}
