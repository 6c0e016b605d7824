// LayerNorm's fused residual add inside the pipelined forward (`add_forward_rows_sampled`:
// sum = x + res made as the moments read each vector) must write every row's float sum,
// refused or not, and give each row the outcome, y bits and statistics of
// `forward_row_sampled` on that sum, with the aliasing the public forms allow.

import CNormKernels
@testable import NormKit
import Testing

@Suite("Fused add, pipelined")
struct FusedPipelinedTests {
    /// Residual rows: the pipelined tests' batch (every hard, refused, scaled and
    /// plain-form row next to every other). Inputs: zero on every third row (the sum is
    /// then the hard row itself), noise elsewhere, and on two rows a NaN or an infinity
    /// at a sampled position (element 0: the sampled shift refuses the row before any
    /// moments run, so the plain add must still write its sum).
    static func operands(dim: Int) -> (x: [Float], res: [Float], rows: Int) {
        let rows = PipelinedForwardTests.batch(dim: dim)
        let res = rows.flatMap { $0 }
        let noise = Tensor.randomUniform([rows.count, dim], lower: -0.5, upper: 0.5, seed: UInt64(dim)).scalars
        var x = (0 ..< res.count).map { i in (i / dim) % 3 == 0 ? 0 : noise[i] }
        if rows.count > 5 {
            x[1 * dim] = .nan
            x[4 * dim] = .infinity
        }
        return (x, res, rows.count)
    }

    /// Row lengths: within a vector, one vector and a tail, a block group, a block and a
    /// tail, whole blocks, a partial block with a tail, and a long row. Under a sanitizer
    /// (which looks for memory errors, not numbers: TestSupport.swift) one of each kind of
    /// end, so the kernel tests cost seconds rather than tens of seconds.
    static let dims = Sanitizer.any ? [1, 17, 257, 1000] : [1, 5, 17, 64, 257, 768, 1000, 4099]

    enum Aliasing: CaseIterable {
        /// x, res, sum, y four buffers.
        case distinct
        /// sum is res (the residual stream updated in place), y apart.
        case sumIsResidual
        /// sum is res is x (the input is the stream itself).
        case sumIsResidualIsInput
        /// y is x, sum is res.
        case outputIsInput
    }

    @Test(arguments: Aliasing.allCases)
    func rowsEqualTheOneRowKernelOnTheSum(aliasing: Aliasing) throws {
        for level in InstructionSet.supported {
            let k = Kernels.layerNorm(at: level)
            for dim in Self.dims {
                let layer = try HalfRowKernelTests.layer(dim: dim)
                var (x, res, rowCount) = Self.operands(dim: dim)
                if aliasing == .sumIsResidualIsInput {
                    // One buffer: the sampled NaN and infinity go into it.
                    if rowCount > 5 { (res[1 * dim], res[4 * dim]) = (.nan, .infinity) }
                    x = res
                }
                let expectedSum = zip(x, res).map { $0 + $1 }
                layer.withParameters(level) { p in
                    var expected = [Float](repeating: 0, count: x.count)
                    var expectedStats = [[Double]](repeating: [.nan, .nan], count: rowCount)
                    var expectedRefused: [Int] = []
                    expectedSum.withUnsafeBufferPointer { sp in
                        expected.withUnsafeMutableBufferPointer { yp in
                            for r in 0 ..< rowCount where k.forward_row_sampled(
                                sp.baseAddress! + r * dim, yp.baseAddress! + r * dim, dim, p.eps, p.weight, p.bias,
                                p.weightMax, p.biasMax, &expectedStats[r]) != 0 {
                                expectedRefused.append(r)
                            }
                        }
                    }
                    // One buffer per role, with a guard past the end; aliases share one.
                    let guardValue = Float(bitPattern: 0x7fc0_4321)
                    var xb = x + [Float](repeating: guardValue, count: 16)
                    var rb = res + [Float](repeating: guardValue, count: 16)
                    var sb = [Float](repeating: guardValue, count: x.count + 16)
                    var yb = sb
                    var mean = [Double](repeating: .nan, count: rowCount), rstd = mean
                    var refused = [Int](repeating: -1, count: rowCount)
                    let count = xb.withUnsafeMutableBufferPointer { xp in
                        rb.withUnsafeMutableBufferPointer { rp in
                            sb.withUnsafeMutableBufferPointer { sp in
                                yb.withUnsafeMutableBufferPointer { yp in
                                    mean.withUnsafeMutableBufferPointer { m in
                                        rstd.withUnsafeMutableBufferPointer { s in
                                            let (xa, ra, sa, ya): (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>,
                                                                   UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>)
                                            switch aliasing {
                                            case .distinct: (xa, ra, sa, ya) = (xp.baseAddress!, rp.baseAddress!, sp.baseAddress!, yp.baseAddress!)
                                            case .sumIsResidual: (xa, ra, sa, ya) = (xp.baseAddress!, rp.baseAddress!, rp.baseAddress!, yp.baseAddress!)
                                            case .sumIsResidualIsInput: (xa, ra, sa, ya) = (rp.baseAddress!, rp.baseAddress!, rp.baseAddress!, yp.baseAddress!)
                                            case .outputIsInput: (xa, ra, sa, ya) = (xp.baseAddress!, rp.baseAddress!, rp.baseAddress!, xp.baseAddress!)
                                            }
                                            return k.add_forward_rows_sampled(
                                                xa, ra, sa, ya, rowCount, dim, p.eps, p.weight, p.bias, p.weightMax,
                                                p.biasMax, m.baseAddress, s.baseAddress, &refused)
                                        }
                                    }
                                }
                            }
                        }
                    }
                    let sum: [Float], y: [Float]
                    switch aliasing {
                    case .distinct: (sum, y) = (sb, yb)
                    case .sumIsResidual, .sumIsResidualIsInput: (sum, y) = (rb, yb)
                    case .outputIsInput: (sum, y) = (rb, xb)
                    }
                    let label = "\(level) \(aliasing) dim \(dim)"
                    #expect(Array(refused[..<count]) == expectedRefused, "\(label): refused rows differ")
                    #expect(sum[..<x.count].map(\.bitPattern) == expectedSum.map(\.bitPattern),
                            "\(label): the sum differs (every row's, refused or not)")
                    #expect(sum[x.count...].allSatisfy { $0.bitPattern == guardValue.bitPattern }
                            && y[x.count...].allSatisfy { $0.bitPattern == guardValue.bitPattern },
                            "\(label): wrote past the rows")
                    for r in 0 ..< rowCount where !expectedRefused.contains(r) {
                        let span = r * dim ..< (r + 1) * dim
                        #expect(y[span].map(\.bitPattern) == expected[span].map(\.bitPattern), "\(label) row \(r): y differs")
                        #expect([mean[r], rstd[r]].map(\.bitPattern) == expectedStats[r].map(\.bitPattern),
                                "\(label) row \(r): statistics differ")
                    }
                    if dim > 1 {
                        #expect(!expectedRefused.isEmpty && expectedRefused.count < rowCount, "\(label): no mix")
                        #expect(expectedRefused.contains(1) && expectedRefused.contains(4),
                                "\(label): the rows with a sampled NaN or infinity were not refused")
                    }
                }
            }
        }
    }

    /// The 16-bit form (`add_forward_rows_sampled_half`): every row's sum is the half
    /// table's `add` (the float sum rounded to the format), and each row's outcome, y and
    /// statistics are `forward_row_sampled_half`'s on that sum; distinct buffers and the
    /// stream updated in place, at every level.
    @Test(arguments: [NK_ELEM_BF16, NK_ELEM_F16])
    func halfRowsEqualTheOneRowKernelOnTheRoundedSum(format: Int32) throws {
        for level in InstructionSet.supported {
            let k = Kernels.layerNorm(at: level)
            let tables = nk_half_kernels_for(level.code)!.pointee
            let conversions = format == NK_ELEM_BF16 ? tables.bfloat16 : tables.float16
            for dim in Self.dims {
                let layer = try HalfRowKernelTests.layer(dim: dim)
                let (xf, rf, rowCount) = Self.operands(dim: dim)
                let bits: (Float) -> UInt16 = format == NK_ELEM_BF16 ? { BFloat16($0).bitPattern }
                                                                     : { HalfRowKernelTests.float16Bits($0) }
                let x = xf.map(bits), res = rf.map(bits)
                var expectedSum = [UInt16](repeating: 0, count: x.count)
                conversions.add(x, res, &expectedSum, nil, x.count)
                for inPlace in [false, true] {
                    layer.withParameters(level) { p in
                        var expected = [UInt16](repeating: 0, count: x.count)
                        var expectedStats = [[Double]](repeating: [.nan, .nan], count: rowCount)
                        var expectedRefused: [Int] = []
                        expectedSum.withUnsafeBufferPointer { sp in
                            expected.withUnsafeMutableBufferPointer { yp in
                                for r in 0 ..< rowCount where k.forward_row_sampled_half(
                                    sp.baseAddress! + r * dim, yp.baseAddress! + r * dim, dim, format, p.eps, p.weight,
                                    p.bias, p.weightMax, p.biasMax, &expectedStats[r]) != 0 {
                                    expectedRefused.append(r)
                                }
                            }
                        }
                        var rb = res + [UInt16](repeating: 0xfffe, count: 16)
                        var sb = [UInt16](repeating: 0xfffe, count: x.count + 16), yb = sb
                        var mean = [Double](repeating: .nan, count: rowCount), rstd = mean
                        var refused = [Int](repeating: -1, count: rowCount)
                        let count = x.withUnsafeBufferPointer { xp in
                            rb.withUnsafeMutableBufferPointer { rp in
                                sb.withUnsafeMutableBufferPointer { sp in
                                    yb.withUnsafeMutableBufferPointer { yp in
                                        mean.withUnsafeMutableBufferPointer { m in
                                            rstd.withUnsafeMutableBufferPointer { s in
                                                k.add_forward_rows_sampled_half(
                                                    xp.baseAddress!, rp.baseAddress!,
                                                    inPlace ? rp.baseAddress! : sp.baseAddress!, yp.baseAddress!,
                                                    rowCount, dim, format, p.eps, p.weight, p.bias, p.weightMax,
                                                    p.biasMax, m.baseAddress, s.baseAddress, &refused)
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        let sum = inPlace ? rb : sb
                        let label = "\(level) format \(format) in place \(inPlace) dim \(dim)"
                        #expect(Array(refused[..<count]) == expectedRefused, "\(label): refused rows differ")
                        #expect(Array(sum[..<x.count]) == expectedSum, "\(label): the sum differs")
                        #expect(sum[x.count...].allSatisfy { $0 == 0xfffe } && yb[x.count...].allSatisfy { $0 == 0xfffe },
                                "\(label): wrote past the rows")
                        for r in 0 ..< rowCount where !expectedRefused.contains(r) {
                            let span = r * dim ..< (r + 1) * dim
                            #expect(Array(yb[span]) == Array(expected[span]), "\(label) row \(r): y differs")
                            #expect([mean[r], rstd[r]].map(\.bitPattern) == expectedStats[r].map(\.bitPattern),
                                    "\(label) row \(r): statistics differ")
                        }
                        if dim > 1 {
                            #expect(expectedRefused.contains(1) && expectedRefused.contains(4)
                                    && expectedRefused.count < rowCount, "\(label): no mix")
                        }
                    }
                }
            }
        }
    }

    /// The bfloat16 raw-buffer form on 1 and 2 threads: the stream is the rounded sum and
    /// the output the plain half forward of it, bitwise, with the output apart and over the
    /// input.
    @Test func halfEngineMatchesThePlainForwardOfTheRoundedSum() throws {
        for level in InstructionSet.supported {
            for dim in [17, 768] {
                let layer = try HalfRowKernelTests.layer(dim: dim)
                let (xf, rf, _) = Self.operands(dim: dim)
                let x = xf.map { BFloat16($0) }, res = rf.map { BFloat16($0) }
                var rounded = [UInt16](repeating: 0, count: x.count)
                let conversions = nk_half_kernels_for(NK_ISA_BASELINE)!.pointee.bfloat16
                conversions.add(x.map(\.bitPattern), res.map(\.bitPattern), &rounded, nil, x.count)
                let sum = rounded.map { BFloat16(bitPattern: $0) }
                var plain = [BFloat16](repeating: BFloat16(bitPattern: 0), count: x.count)
                try InstructionSet.with(level) {
                    try sum.withUnsafeBufferPointer { s in
                        try plain.withUnsafeMutableBufferPointer { try layer.forward(s, into: $0) }
                    }
                }
                for threads in [1, 2] {
                    try Parallelism.withThreadCount(threads) {
                        try InstructionSet.with(level) {
                            let label = "\(level) dim \(dim) \(threads) threads"
                            for overInput in [false, true] {
                                var input = x, stream = res
                                var output = [BFloat16](repeating: BFloat16(bitPattern: 0), count: x.count)
                                try input.withUnsafeMutableBufferPointer { i in
                                    try stream.withUnsafeMutableBufferPointer { r in
                                        try output.withUnsafeMutableBufferPointer { o in
                                            try layer.forward(UnsafeBufferPointer(i), addingTo: r, into: overInput ? i : o)
                                        }
                                    }
                                }
                                let y = overInput ? input : output
                                #expect(stream.map(\.bitPattern) == rounded, "\(label) over input \(overInput): stream")
                                #expect(y.map(\.bitPattern) == plain.map(\.bitPattern), "\(label) over input \(overInput): output")
                            }
                        }
                    }
                }
            }
        }
    }

    /// Through the public forms, on 1 and 2 threads: the fused forward's output and stream
    /// equal the plain forward of the float sum, bitwise, for tensors (the stream in place,
    /// a new sum, training statistics) and raw buffers with the output over the input.
    @Test func engineMatchesThePlainForwardOfTheSum() throws {
        for level in InstructionSet.supported {
            for dim in [17, 768] {
                let layer = try HalfRowKernelTests.layer(dim: dim)
                let (xs, res, rowCount) = Self.operands(dim: dim)
                let x = try Tensor(shape: [rowCount, dim], scalars: xs)
                let h0 = try Tensor(shape: [rowCount, dim], scalars: res)
                let sum = try Tensor(shape: [rowCount, dim], scalars: zip(xs, res).map { $0 + $1 })
                let (plain, plainStats) = try InstructionSet.with(level) { try layer.forwardForTraining(sum) }
                for threads in [1, 2] {
                    try Parallelism.withThreadCount(threads) {
                        try InstructionSet.with(level) {
                            let label = "\(level) dim \(dim) \(threads) threads"
                            var h = h0, y = Tensor.zeros([rowCount, dim])
                            try layer.forward(x, addingTo: &h, into: &y)
                            #expect(h.scalars.map(\.bitPattern) == sum.scalars.map(\.bitPattern), "\(label): stream")
                            #expect(y.scalars.map(\.bitPattern) == plain.scalars.map(\.bitPattern), "\(label): output")
                            let (out, s, stats) = try layer.forwardForTraining(x, addingResidual: h0)
                            #expect(s.scalars.map(\.bitPattern) == sum.scalars.map(\.bitPattern), "\(label): new sum")
                            #expect(out.scalars.map(\.bitPattern) == plain.scalars.map(\.bitPattern), "\(label): training output")
                            #expect((stats.means + stats.reciprocalStandardDeviations).map(\.bitPattern)
                                    == (plainStats.means + plainStats.reciprocalStandardDeviations).map(\.bitPattern),
                                    "\(label): statistics")
                            // Raw buffers, the output written over the input.
                            var input = xs, stream = res
                            try input.withUnsafeMutableBufferPointer { i in
                                try stream.withUnsafeMutableBufferPointer { r in
                                    try layer.forward(UnsafeBufferPointer(i), addingTo: r, into: i)
                                }
                            }
                            #expect(stream.map(\.bitPattern) == sum.scalars.map(\.bitPattern), "\(label): raw stream")
                            #expect(input.map(\.bitPattern) == plain.scalars.map(\.bitPattern), "\(label): raw output over input")
                        }
                    }
                }
            }
        }
    }
}
