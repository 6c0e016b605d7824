// The forward fast path's float moments (kernel layer `row_moments_fast`): D1 = Σ(x - s)
// and D2 = Σ(x - s)² in float lanes, each term meeting at most B - 1 = 3 float additions
// (a tree over each whole block of 8 vectors; chains of at most 4 in the last, partial
// block) before its lane's partial is added in Double. docs/numerics.md ("Blocked float moments") bounds them by
// |D1~ - D1| <= β·Σ|d| and |D2~ - D2| <= α·D2 (+ an underflow term these rows never reach),
// β = 1.0001·(4u + nε), α = 1.0001·(6u + nε); the moments' certificate rests on that. These
// rows put the float sums to work at the lengths where the block structure changes (whole
// blocks of 8 vectors; a partial last block of at most 4 or 8 vectors takes 1 or 2 chains)
// at every level's width: equal terms just above 1, whose chained partial sums round from
// the third term on, terms growing along the row, random ones about a shift off their mean,
// and two rows at the bound's edge for the tree: each of a block's three levels of
// additions rounds up by almost half an ulp (about 3u of the 4u that the difference and
// three additions allow; the difference is exact there).
@testable import NormKit
import CNormKernels
import Testing

@Suite("Forward: blocked float moments stay inside their proved bound")
struct ForwardMomentSumTests {
    static let dims = [1, 3, 4, 5, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257, 320, 768, 4099]

    /// The tree-edge rows (BlockedSums.treeEdge): `a` just over u for Σd, its square root
    /// for Σd².
    static func treeEdge(dim n: Int, width w: Int, squares: Bool) -> [Float] {
        let a: Float = squares ? Float((1.01 * 0x1p-24).squareRoot()) : 1.01 * 0x1p-24
        return BlockedSums.treeEdge(count: n, width: w, a: a)
    }

    /// (name, row, shift).
    static func rows(dim n: Int, width w: Int) -> [(String, [Float], Float)] {
        let equal = [Float](repeating: 1 + 0x1p-23 * 3, count: n)
        let ramp = (0..<n).map { 1 + Float($0) * 0x1p-10 }
        let random = Tensor.randomNormal([n], mean: 3, standardDeviation: 2, seed: UInt64(n)).scalars
        return [("equal terms", equal, 0), ("ramp", ramp, 0.5), ("random", random, 2.7),
                ("tree edge Σd", treeEdge(dim: n, width: w, squares: false), 0),
                ("tree edge Σd²", treeEdge(dim: n, width: w, squares: true), 0)]
    }

    @Test(arguments: InstructionSet.supported)
    func sumsWithinTheirBound(level: InstructionSet) throws {
        let kernels = Kernels.layerNorm(at: level)
        let u = 0x1p-24
        var worst = (0.0, 0.0)
        var edge = (0.0, 0.0)  // the tree-edge rows with a whole block
        for n in Self.dims {
            for (name, x, s) in Self.rows(dim: n, width: BlockedSums.width(level)) {
                let m = kernels.row_moments_fast(x, n, s)
                // The differences are exact in Double; their sums are off by at most nε of
                // Σ|d|, far below the u-sized bounds checked.
                var d1 = 0.0, d1Abs = 0.0, d2 = 0.0
                for v in x {
                    let d = Double(v) - Double(s)
                    d1 += d
                    d1Abs += abs(d)
                    d2 += d * d
                }
                let e1 = d1Abs > 0 ? abs(m.sum - d1) / (u * d1Abs) : 0
                let e2 = d2 > 0 ? abs(m.sum_squares - d2) / (u * d2) : 0
                worst = (max(worst.0, e1), max(worst.1, e2))
                if n >= BlockedSums.treeVectors * BlockedSums.width(level) && name == "tree edge Σd" { edge.0 = max(edge.0, e1) }
                if n >= BlockedSums.treeVectors * BlockedSums.width(level) && name == "tree edge Σd²" { edge.1 = max(edge.1, e2) }
                #expect(e1 <= 4.001, "\(level) dim \(n) \(name): Σd off by \(e1)u of Σ|d|")
                #expect(e2 <= 6.001, "\(level) dim \(n) \(name): Σd² off by \(e2)u of Σd²")
            }
        }
        // The rows must reach a visible part of the bound, or they test nothing.
        #expect(worst.0 > 0.15 && worst.1 > 0.5, "\(level): worst errors only \(worst.0)u, \(worst.1)u")
        // The edge rows must reach most of the three additions' 3u.
        #expect(edge.0 > 2.5 && edge.1 > 2.5, "\(level): tree-edge rows only \(edge.0)u, \(edge.1)u")
        print("ForwardMomentSumTests \(level): worst Σd \(worst.0)u of Σ|d|, Σd² \(worst.1)u of Σd²; tree edge \(edge.0)u, \(edge.1)u")
    }
}
