// The fast backward's second pass over two rows at once (kernel layer `backward_affine2`,
// which `BackwardJob` uses for two consecutive fast rows): it must give the bits of two
// `backward_affine` calls in row order, for dx, both partials, and each row's max|dx|,
// with either partial absent, at every level and at lengths around the vector widths.
@testable import NormKit
import CNormKernels
import NormKitTesting
import Testing

@Suite("Backward: two rows in one second pass give the bits of two")
struct BackwardPairTests {
    static let dims = [1, 3, 4, 7, 8, 15, 16, 17, 31, 33, 100, 768, 1001]

    @Test(arguments: InstructionSet.supported)
    func pairEqualsTwoSingleRows(level: InstructionSet) throws {
        try InstructionSet.with(level) {
            let kernels = Kernels.layerNorm
            for n in Self.dims {
                let x = Tensor.randomNormal([2 * n], mean: 0.5, standardDeviation: 2, seed: UInt64(n)).scalars
                var dy = Tensor.randomNormal([2 * n], seed: UInt64(n) + 1).scalars
                if n > 2 { dy[n + n / 2] = .nan }  // row 2's max|dx| skips it in both forms
                let w = Tensor.randomNormal([n], mean: 1, standardDeviation: 0.5, seed: UInt64(n) + 2).scalars
                let pw0 = Tensor.randomNormal([n], seed: UInt64(n) + 3).scalars
                let pb0 = Tensor.randomNormal([n], seed: UInt64(n) + 4).scalars
                // rstd, beta, gamma, mean_hi, mean_lo, s for each row: values of the sizes the
                // fast path hands over, different per row.
                let q: [Float] = [1.7, -0.31, 0.052, 0.48, 3e-9, 1.7, 0.9, 0.12, -0.4, -0.25, -1e-8, 0.9]
                for (wantW, wantB) in [(true, true), (true, false), (false, true), (false, false)] {
                    var single = [Float](repeating: 0, count: 2 * n), pair = single
                    var pwS = pw0, pbS = pb0, pwP = pw0, pbP = pb0
                    var maxS = [Float](repeating: 0, count: 2), maxP = maxS
                    single.withUnsafeMutableBufferPointer { out in
                        pwS.withUnsafeMutableBufferPointer { pw in
                            pbS.withUnsafeMutableBufferPointer { pb in
                                for k in 0 ..< 2 {
                                    let o = k * n, p = 6 * k
                                    maxS[k] = kernels.backward_affine(
                                        dy.withUnsafeBufferPointer { $0.baseAddress! + o }, w,
                                        x.withUnsafeBufferPointer { $0.baseAddress! + o }, out.baseAddress! + o, n,
                                        q[p], q[p + 1], q[p + 2], q[p + 3], q[p + 4], q[p + 5],
                                        wantW ? pw.baseAddress : nil, wantB ? pb.baseAddress : nil,
                                        UnsafePointer(out.baseAddress! + o))
                                }
                            }
                        }
                    }
                    pair.withUnsafeMutableBufferPointer { out in
                        pwP.withUnsafeMutableBufferPointer { pw in
                            pbP.withUnsafeMutableBufferPointer { pb in
                                kernels.backward_affine2(dy, w, x, out.baseAddress!, n, q,
                                                         wantW ? pw.baseAddress : nil, wantB ? pb.baseAddress : nil,
                                                         UnsafePointer(out.baseAddress!), &maxP)
                            }
                        }
                    }
                    let what = "\(level) n \(n) weight \(wantW) bias \(wantB)"
                    #expect(pair.map(\.bitPattern) == single.map(\.bitPattern), "dx: \(what)")
                    #expect(pwP.map(\.bitPattern) == pwS.map(\.bitPattern), "partial weight: \(what)")
                    #expect(pbP.map(\.bitPattern) == pbS.map(\.bitPattern), "partial bias: \(what)")
                    #expect(maxP.map(\.bitPattern) == maxS.map(\.bitPattern), "max|dx|: \(what)")
                    if wantW { #expect(pwP != pw0, "the partials moved: \(what)") }
                }
            }
        }
    }
}
