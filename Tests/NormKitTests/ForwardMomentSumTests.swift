// The forward fast path's float moments (kernel layer `row_moments_fast`): D1 = Σ(x - s)
// and D2 = Σ(x - s)² in float lanes, at most B = 4 terms a lane before each partial is
// added in Double. docs/numerics.md ("Blocked float moments") bounds them by
// |D1~ - D1| <= β·Σ|d| and |D2~ - D2| <= α·D2 (+ an underflow term these rows never reach),
// β = 1.0001·(4u + nε), α = 1.0001·(6u + nε); the moments' certificate rests on that. These
// rows put the float chains to work at the lengths where the chain count changes (a
// partial last block of at most 4, 8 or 16 vectors takes 1, 2 or 4 chains) at every
// level's width: equal terms just above 1, whose float partial sums round from the third
// term on, terms growing along the row, and random ones about a shift off their mean.
@testable import NormKit
import CNormKernels
import Testing

@Suite("Forward: blocked float moments stay inside their proved bound")
struct ForwardMomentSumTests {
    static let dims = [1, 3, 4, 5, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257, 320, 768, 4099]

    /// (name, row, shift).
    static func rows(dim n: Int) -> [(String, [Float], Float)] {
        let equal = [Float](repeating: 1 + 0x1p-23 * 3, count: n)
        let ramp = (0..<n).map { 1 + Float($0) * 0x1p-10 }
        let random = Tensor.randomNormal([n], mean: 3, standardDeviation: 2, seed: UInt64(n)).scalars
        return [("equal terms", equal, 0), ("ramp", ramp, 0.5), ("random", random, 2.7)]
    }

    @Test(arguments: InstructionSet.supported)
    func sumsWithinTheirBound(level: InstructionSet) throws {
        let kernels = Kernels.layerNorm(at: level)
        let u = 0x1p-24
        var worst = (0.0, 0.0)
        for n in Self.dims {
            for (name, x, s) in Self.rows(dim: n) {
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
                #expect(e1 <= 4.001, "\(level) dim \(n) \(name): Σd off by \(e1)u of Σ|d|")
                #expect(e2 <= 6.001, "\(level) dim \(n) \(name): Σd² off by \(e2)u of Σd²")
            }
        }
        // The rows must reach a visible part of the bound, or they test nothing.
        #expect(worst.0 > 0.15 && worst.1 > 0.5, "\(level): worst errors only \(worst.0)u, \(worst.1)u")
        print("ForwardMomentSumTests \(level): worst Σd \(worst.0)u of Σ|d|, Σd² \(worst.1)u of Σd²")
    }
}
