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

    @Test func rowsEqualTheOneRowKernel() throws {
        for level in InstructionSet.supported {
            let k = Kernels.layerNorm(at: level)
            for dim in [1, 5, 16, 17, 256, 257, 768, 1000, 4099] {
                let layer = try HalfRowKernelTests.layer(dim: dim)
                let rows = Self.batch(dim: dim)
                layer.withParameters(level) { p in
                    let refused = Self.expectPipelinedEqualsRowByRow(
                        rows.flatMap { $0 }, rows: rows.count, dim: dim, guardValue: Float(bitPattern: 0x7fc0_1234),
                        bits: \.bitPattern, "\(level) dim \(dim)",
                        row: { x, y, stats in
                            k.forward_row_sampled(x, y, dim, p.eps, p.weight, p.bias, p.weightMax, p.biasMax, stats)
                        },
                        pipelined: { x, y, mean, rstd, refused in
                            k.forward_rows_sampled(x, y, rows.count, dim, p.eps, p.weight, p.bias, p.weightMax, p.biasMax,
                                                   mean, rstd, refused)
                        })
                    // Both outcomes sit side by side (at dim 1 every row is constant: all refused).
                    if dim > 1 {
                        #expect(!refused.isEmpty && refused.count < rows.count, "dim \(dim): no mix")
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
            for dim in [1, 17, 256, 768, 4099] {
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
