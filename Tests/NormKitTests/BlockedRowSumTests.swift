// The fast backward pass's row sums (kernel layer `backward_centre`): float within
// blocks per lane (trees over 8 vectors, then chains of at most 4), the blocks in Double.
// docs/numerics.md ("Backward") bounds each term's error by its product roundings plus
// 3u of float additions; the check's constants (8u for Σ dy·w, 12u for Σ p·w) rest on
// that. These rows put the sums to work: equal positive terms just above 1, whose chained
// float partial sums round from the third term on, at lengths around each block
// boundary, and a row at the tree's edge: products [1, a, a, 0, a, 0, 0, 0] by position in
// the block (a just over u), each of the tree's three roundings about 0.99u up.
// (A float chain of 64 equal terms is off by 6u, one of 4 by 0.)
@testable import NormKit
import CNormKernels
import NormKitTesting
import Testing

@Suite("Backward: blocked float row sums stay inside their proved bound")
struct BlockedRowSumTests {
    static let dims = [1, 3, 15, 16, 17, 63, 64, 65, 127, 768, 4099]

    /// Rows: equal terms just above 1 (dy = 1 + 3·2^-23, w = 1 + 2^-23: from the third
    /// term on, float partial sums of them round), terms growing along the row, and random
    /// ones; the mean split as forward gives it.
    static func rows(dim n: Int) -> [(String, [Float], [Float], [Float])] {
        let equalDy = [Float](repeating: 1 + 0x1p-23 * 3, count: n)
        let equalW = [Float](repeating: 1 + 0x1p-23, count: n)
        let ramp = (0..<n).map { 1 + Float($0) * 0x1p-10 }
        let rx = Tensor.randomNormal([n], mean: 3, standardDeviation: 2, seed: UInt64(n)).scalars
        let rdy = Tensor.randomNormal([n], seed: UInt64(n) + 1).scalars
        let rw = Tensor.randomNormal([n], mean: 1, standardDeviation: 0.5, seed: UInt64(n) + 2).scalars
        return [("equal terms", equalW.map { $0 + 5 }, equalDy, equalW), ("ramp", ramp.map { $0 * 3 }, ramp, ramp),
                ("random", rx, rdy, rw)]
    }

    /// The tree-edge row: dy at BlockedSums.treeEdge with a = 1.01u, w = 1 (exact products),
    /// x = 5 (every d = 0).
    static func treeEdge(dim n: Int, width: Int) -> (String, [Float], [Float], [Float]) {
        ("tree edge", [Float](repeating: 5, count: n), BlockedSums.treeEdge(count: n, width: width, a: 1.01 * 0x1p-24),
         [Float](repeating: 1, count: n))
    }

    @Test(arguments: InstructionSet.supported)
    func sumsWithinTheirBound(level: InstructionSet) throws {
        try InstructionSet.with(level) {
            let kernels = Kernels.layerNorm
            let u = 0x1p-24
            var worst = (0.0, 0.0)
            var edge = 0.0  // the tree-edge row with a whole block
            let width = BlockedSums.width(level)
            for n in Self.dims {
                for (name, x, dy, w) in Self.rows(dim: n) + [Self.treeEdge(dim: n, width: width)] {
                    let mean = x.reduce(0.0) { $0 + Double($1) } / Double(n)
                    let hi = Float(mean), lo = Float(mean - Double(hi))
                    var sums = (0.0, 0.0)
                    _ = withUnsafeMutableBytes(of: &sums) { s in
                        kernels.backward_centre(x, dy, w, n, hi, lo, 0, s.baseAddress!.assumingMemoryBound(to: Double.self))
                    }
                    // Exact up to Double rounding: the float products' inputs, in Double.
                    var g = 0.0, gAbs = 0.0, q = 0.0, qAbs = 0.0
                    for i in 0..<n {
                        let t = Double(dy[i]) * Double(w[i])
                        g += t
                        gAbs += abs(t)
                        let d = Double(x[i]) - Double(hi) - Double(lo)
                        q += d * t
                        qAbs += abs(d * t)
                    }
                    // Σ dy·w: one product rounding and at most 3 float additions per term.
                    let eg = abs(sums.0 - g) / (u * gAbs)
                    // Σ p·w: d (3u), p (u), ·w (u), 3 additions; d is exact here only near the mean.
                    let eq = qAbs > 0 ? abs(sums.1 - q) / (u * qAbs) : 0
                    worst = (max(worst.0, eg), max(worst.1, eq))
                    if name == "tree edge" && n >= BlockedSums.treeVectors * width { edge = max(edge, eg) }
                    #expect(eg <= 4.001, "\(level) dim \(n) \(name): Σ dy·w off by \(eg)u of Σ|dy·w|")
                    #expect(eq <= 8.001, "\(level) dim \(n) \(name): Σ p·w off by \(eq)u of Σ|p·w|")
                }
            }
            // The rows must reach a visible part of the bound, or they test nothing.
            #expect(worst.0 > 0.25, "\(level): worst Σ dy·w error only \(worst.0)u")
            // The edge row must reach most of the tree's 3u.
            #expect(edge > 2.5, "\(level): the tree-edge row only \(edge)u")
            print("BlockedRowSumTests \(level): worst Σ dy·w \(worst.0)u, Σ p·w \(worst.1)u; tree edge \(edge)u")
        }
    }
}
