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

    @Test func rowsEqualTheOneRowKernel() throws {
        for level in InstructionSet.supported {
            let k = Kernels.layerNorm(at: level)
            for dim in [1, 5, 16, 17, 256, 257, 768, 1000, 4099] {
                let layer = try HalfRowKernelTests.layer(dim: dim)
                let rows = Self.batch(dim: dim)
                let x = rows.flatMap { $0 }
                layer.withParameters(level) { p in
                    // Row by row.
                    var expected = [Float](repeating: 0, count: x.count)
                    var expectedStats = [[Double]](repeating: [.nan, .nan], count: rows.count)
                    var expectedRefused: [Int] = []
                    x.withUnsafeBufferPointer { xp in
                        expected.withUnsafeMutableBufferPointer { yp in
                            for r in 0 ..< rows.count {
                                if k.forward_row_sampled(xp.baseAddress! + r * dim, yp.baseAddress! + r * dim, dim, p.eps,
                                                         p.weight, p.bias, p.weightMax, p.biasMax, &expectedStats[r]) != 0 {
                                    expectedRefused.append(r)
                                }
                            }
                        }
                    }
                    // Pipelined, with and without statistics.
                    for wantStats in [true, false] {
                        var y = [Float](repeating: 0, count: x.count)
                        var mean = [Double](repeating: .nan, count: rows.count), rstd = mean
                        var refused = [Int](repeating: -1, count: rows.count)
                        let count = x.withUnsafeBufferPointer { xp in
                            y.withUnsafeMutableBufferPointer { yp in
                                mean.withUnsafeMutableBufferPointer { m in
                                    rstd.withUnsafeMutableBufferPointer { s in
                                        k.forward_rows_sampled(xp.baseAddress!, yp.baseAddress!, rows.count, dim, p.eps,
                                                               p.weight, p.bias, p.weightMax, p.biasMax,
                                                               wantStats ? m.baseAddress : nil,
                                                               wantStats ? s.baseAddress : nil, &refused)
                                    }
                                }
                            }
                        }
                        let label = "\(level) dim \(dim) stats \(wantStats)"
                        #expect(Array(refused[..<count]) == expectedRefused, "\(label): refused rows differ")
                        for r in 0 ..< rows.count where !expectedRefused.contains(r) {
                            let span = r * dim ..< (r + 1) * dim
                            #expect(y[span].map(\.bitPattern) == expected[span].map(\.bitPattern),
                                    "\(label) row \(r): y differs")
                            if wantStats {
                                #expect([mean[r], rstd[r]].map(\.bitPattern) == expectedStats[r].map(\.bitPattern),
                                        "\(label) row \(r): statistics differ")
                            }
                        }
                    }
                    // Both outcomes sit side by side (at dim 1 every row is constant: all refused).
                    if dim > 1 {
                        #expect(!expectedRefused.isEmpty && expectedRefused.count < rows.count, "dim \(dim): no mix")
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
                    var expected = [UInt16](repeating: 0, count: x.count)
                    var expectedStats = [[Double]](repeating: [.nan, .nan], count: rows.count)
                    var expectedRefused: [Int] = []
                    x.withUnsafeBufferPointer { xp in
                        expected.withUnsafeMutableBufferPointer { yp in
                            for r in 0 ..< rows.count {
                                if k.forward_row_sampled_half(xp.baseAddress! + r * dim, yp.baseAddress! + r * dim, dim,
                                                              format, p.eps, p.weight, p.bias, p.weightMax, p.biasMax,
                                                              &expectedStats[r]) != 0 {
                                    expectedRefused.append(r)
                                }
                            }
                        }
                    }
                    var y = [UInt16](repeating: 0xffff, count: x.count + 16)
                    var mean = [Double](repeating: .nan, count: rows.count), rstd = mean
                    var refused = [Int](repeating: -1, count: rows.count)
                    let count = x.withUnsafeBufferPointer { xp in
                        y.withUnsafeMutableBufferPointer { yp in
                            mean.withUnsafeMutableBufferPointer { m in
                                rstd.withUnsafeMutableBufferPointer { s in
                                    k.forward_rows_sampled_half(xp.baseAddress!, yp.baseAddress!, rows.count, dim, format,
                                                                p.eps, p.weight, p.bias, p.weightMax, p.biasMax,
                                                                m.baseAddress, s.baseAddress, &refused)
                                }
                            }
                        }
                    }
                    let label = "\(level) format \(format) dim \(dim)"
                    #expect(Array(refused[..<count]) == expectedRefused, "\(label): refused rows differ")
                    #expect(y[x.count...].allSatisfy { $0 == 0xffff }, "\(label): wrote past y")
                    for r in 0 ..< rows.count where !expectedRefused.contains(r) {
                        let span = r * dim ..< (r + 1) * dim
                        #expect(Array(y[span]) == Array(expected[span]), "\(label) row \(r): y differs")
                        #expect([mean[r], rstd[r]].map(\.bitPattern) == expectedStats[r].map(\.bitPattern),
                                "\(label) row \(r): statistics differ")
                    }
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
