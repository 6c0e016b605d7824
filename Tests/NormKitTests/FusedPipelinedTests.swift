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
            for dim in [1, 5, 17, 64, 257, 768, 1000, 4099] {
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
