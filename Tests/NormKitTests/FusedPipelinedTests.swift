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
    static let dims = Sanitizer.any ? [1, 17, 257, 1000] : [1, 5, 17, 64, 100, 128, 256, 257, 768, 1000, 4099]

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

    /// `alwaysPipelined`: `add_forward_rows_pipelined` (kept for calls from memory, never in
    /// batches) instead of `add_forward_rows_sampled` (batches of short rows).
    @Test(arguments: Aliasing.allCases, [false, true])
    func rowsEqualTheOneRowKernelOnTheSum(aliasing: Aliasing, alwaysPipelined: Bool) throws {
        for level in InstructionSet.supported {
            let k = Kernels.layerNorm(at: level)
            let entry = alwaysPipelined ? k.add_forward_rows_pipelined : k.add_forward_rows_sampled
            for dim in Self.dims {
                let layer = try HalfRowKernelTests.layer(dim: dim)
                var (x, res, rowCount) = Self.operands(dim: dim)
                if aliasing == .sumIsResidualIsInput {
                    // One buffer: the sampled NaN and infinity go into it.
                    if rowCount > 5 { (res[1 * dim], res[4 * dim]) = (.nan, .infinity) }
                    x = res
                }
                let expectedSum = zip(x, res).map { $0 + $1 }
                let guardValue = Float(bitPattern: 0x7fc0_4321)
                let label = "\(level) \(aliasing) dim \(dim) always pipelined \(alwaysPipelined)"
                layer.withParameters(level) { p in
                    // The one-row kernel on the sum against the fused kernel, which runs on
                    // fresh operands each call (the stream is updated in place) with the
                    // aliasing asked for; its y is copied out when it lands in x.
                    let refused = PipelinedForwardTests.expectPipelinedEqualsRowByRow(
                        expectedSum, rows: rowCount, dim: dim, guardValue: guardValue, bits: \.bitPattern, label,
                        row: { s, y, stats in
                            k.forward_row_sampled(s, y, dim, p.eps, p.weight, p.bias, p.weightMax, p.biasMax, stats)
                        },
                        pipelined: { _, y, mean, rstd, refused in
                            // One buffer per role, with a guard past the end; aliases share one.
                            var xb = x + [Float](repeating: guardValue, count: 16)
                            var rb = res + [Float](repeating: guardValue, count: 16)
                            var sb = [Float](repeating: guardValue, count: x.count + 16)
                            let count = xb.withUnsafeMutableBufferPointer { xp in
                                rb.withUnsafeMutableBufferPointer { rp in
                                    sb.withUnsafeMutableBufferPointer { sp in
                                        let (xa, ra, sa, ya): (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>,
                                                               UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>)
                                        switch aliasing {
                                        case .distinct: (xa, ra, sa, ya) = (xp.baseAddress!, rp.baseAddress!, sp.baseAddress!, y)
                                        case .sumIsResidual: (xa, ra, sa, ya) = (xp.baseAddress!, rp.baseAddress!, rp.baseAddress!, y)
                                        case .sumIsResidualIsInput: (xa, ra, sa, ya) = (rp.baseAddress!, rp.baseAddress!, rp.baseAddress!, y)
                                        case .outputIsInput: (xa, ra, sa, ya) = (xp.baseAddress!, rp.baseAddress!, rp.baseAddress!, xp.baseAddress!)
                                        }
                                        return entry(
                                            xa, ra, sa, ya, rowCount, dim, p.eps, p.weight, p.bias, p.weightMax,
                                            p.biasMax, mean, rstd, refused)
                                    }
                                }
                            }
                            if aliasing == .outputIsInput {
                                for i in 0 ..< x.count { y[i] = xb[i] }
                            }
                            let sum = aliasing == .distinct ? sb : rb
                            #expect(sum[..<x.count].map(\.bitPattern) == expectedSum.map(\.bitPattern),
                                    "\(label): the sum differs (every row's, refused or not)")
                            #expect([sum, xb].allSatisfy { $0[x.count...].allSatisfy { $0.bitPattern == guardValue.bitPattern } },
                                    "\(label): wrote past the rows")
                            return count
                        })
                    if dim > 1 {
                        #expect(!refused.isEmpty && refused.count < rowCount, "\(label): no mix")
                        #expect(refused.contains(1) && refused.contains(4),
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
                    let label = "\(level) format \(format) in place \(inPlace) dim \(dim)"
                    layer.withParameters(level) { p in
                        let refused = PipelinedForwardTests.expectPipelinedEqualsRowByRow(
                            expectedSum, rows: rowCount, dim: dim, guardValue: 0xfffe, bits: { UInt32($0) }, label,
                            row: { s, y, stats in
                                k.forward_row_sampled_half(s, y, dim, format, p.eps, p.weight, p.bias, p.weightMax,
                                                           p.biasMax, stats)
                            },
                            pipelined: { _, y, mean, rstd, refused in
                                var rb = res + [UInt16](repeating: 0xfffe, count: 16)
                                var sb = [UInt16](repeating: 0xfffe, count: x.count + 16)
                                let count = x.withUnsafeBufferPointer { xp in
                                    rb.withUnsafeMutableBufferPointer { rp in
                                        sb.withUnsafeMutableBufferPointer { sp in
                                            k.add_forward_rows_sampled_half(
                                                xp.baseAddress!, rp.baseAddress!, inPlace ? rp.baseAddress! : sp.baseAddress!,
                                                y, rowCount, dim, format, p.eps, p.weight, p.bias, p.weightMax, p.biasMax,
                                                mean, rstd, refused)
                                        }
                                    }
                                }
                                let sum = inPlace ? rb : sb
                                #expect(Array(sum[..<x.count]) == expectedSum, "\(label): the sum differs")
                                #expect(sum[x.count...].allSatisfy { $0 == 0xfffe }, "\(label): wrote past the sum")
                                return count
                            })
                        if dim > 1 {
                            #expect(refused.contains(1) && refused.contains(4) && refused.count < rowCount,
                                    "\(label): no mix")
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

    /// A fused add whose four arrays outgrow the cache takes `add_forward_rows_pipelined`
    /// (short rows included, `ForwardParameters.addFromMemory`): still the plain forward of
    /// the float sum, bitwise, on 1 and 2 threads. Off under a sanitizer: its size follows
    /// the cache (100 MiB of arrays where the L3 is 300 MiB: 28 s under AddressSanitizer),
    /// and `rowsEqualTheOneRowKernelOnTheSum` runs `add_forward_rows_pipelined` there, with
    /// guards past every buffer.
    @Test(.disabled(if: Sanitizer.any, "the pipelined add is checked by rowsEqualTheOneRowKernelOnTheSum"))
    func addFromMemoryMatchesThePlainForwardOfTheSum() throws {
        // The fewest rows whose four arrays reach the threshold, which follows the machine's
        // last-level cache: 16384 rows of 128 at 32 MiB.
        let dim = 128, rows = (StreamingStores.thresholdBytes + 16 * dim - 1) / (16 * dim)
        #expect(StreamingStores.outgrowsCache(rows: rows, length: dim, streams: 4))
        #expect(!StreamingStores.outgrowsCache(rows: rows, length: dim))
        let layer = try HalfRowKernelTests.layer(dim: dim)
        let x = Tensor.randomNormal([rows, dim], seed: 21)
        let h0 = Tensor.randomNormal([rows, dim], mean: 1, seed: 22)
        let sum = try Tensor(shape: [rows, dim], scalars: zip(x.scalars, h0.scalars).map { $0 + $1 })
        let plain = try layer.forward(sum)
        for threads in [1, 2] {
            try Parallelism.withThreadCount(threads) {
                var h = h0, y = Tensor.zeros([rows, dim])
                try layer.forward(x, addingTo: &h, into: &y)
                #expect(h.scalars.map(\.bitPattern) == sum.scalars.map(\.bitPattern), "\(threads) threads: stream")
                #expect(y.scalars.map(\.bitPattern) == plain.scalars.map(\.bitPattern), "\(threads) threads: output")
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
