import CNormKernels
@testable import NormKit
import NormKitTesting
import Testing

/// RMSNorm's float sum of squares (`row_sumsq_f`) and its certificate
/// (docs/numerics.md, "RMSNorm", "The float sum of squares").
@Suite("RMSNorm: the float sum of squares and its certificate")
struct RMSFloatSumTests {
    static let dims = [1, 3, 15, 16, 17, 63, 64, 65, 127, 128, 129, 200, 768, 1000, 4096, 4099]

    /// Rows that push the float partials hardest: one value repeated, found by a search
    /// over c = a + j·2^-23 (every addition of a lane then rounds the same way: 1.5u of
    /// Σx² with FMA and 0.99u without at 4 terms per lane, 5-12u at 64), a ramp, and
    /// random normal values.
    static func rows(dim n: Int) -> [(String, [Float])] {
        let equal = [Float](repeating: 1.15625 + 0x1p-18, count: n)
        let equalNoFMA = [Float](repeating: 1.421875 + 0x1p-18, count: n)
        let ramp = (0..<n).map { Float($0 % 97 + 1) * 0.173 }
        let random = Tensor.randomNormal([n], mean: 0.2, standardDeviation: 3, seed: UInt64(n)).scalars
        return [("equal terms", equal), ("equal terms, no FMA", equalNoFMA), ("ramp", ramp), ("random", random)]
    }

    /// |Σ̂ - Σx²| ≤ γ_4·Σx² + n·2^-53·Σx² ≈ 4u·Σx² at every level (the proved bound: four
    /// roundings per lane partial, Double for the rest), and the rows reach a visible
    /// part of it.
    @Test(arguments: InstructionSet.supported)
    func sumWithinItsBound(level: InstructionSet) throws {
        let kernels = Kernels.rmsNorm(at: level)
        let u = 0x1p-24
        var worst = 0.0
        for n in Self.dims {
            for (name, x) in Self.rows(dim: n) {
                // Exact up to Double rounding ((n - 1)·2^-53 relative: positive terms).
                let exact = x.reduce(0.0) { $0 + Double($1) * Double($1) }
                let fast = kernels.row_sumsq_f(x, n)
                let e = abs(fast - exact) / (u * exact)
                worst = max(worst, e)
                #expect(e <= 4.001, "\(level) dim \(n) \(name): off by \(e)u of Σx²")
                #expect(RMSKernel.certified(fast, n), "\(level) dim \(n) \(name): refused")
                // The fused pass walks the same lanes in the same order.
                let zeros = [Float](repeating: 0, count: n)
                var sum = [Float](repeating: .nan, count: n)
                let fused = kernels.add_row_sumsq_f(x, zeros, &sum, n)
                #expect(fused.bitPattern == fast.bitPattern && sum == x, "\(level) dim \(n) \(name): fused pass differs")
            }
        }
        #expect(worst > 0.9, "\(level): worst error only \(worst)u: the rows test nothing")
    }

    /// The underflow edge: a row scaled so that its float sum is just above n·2^-120 is
    /// certified, just below it is refused (and counted), and both come out within the
    /// forward bound through the public API. Squares below float's normal range abound
    /// on both sides.
    @Test(arguments: InstructionSet.supported)
    func underflowEdge(level: InstructionSet) throws {
        let n = 768
        let base = Tensor.randomNormal([n], standardDeviation: 1, seed: 31).scalars
        let kernels = Kernels.rmsNorm(at: level)
        let unit = kernels.row_sumsq_f(base, n)
        let threshold = Double(n) * 0x1p-120
        for (factor, expectCertified) in [(1.01, true), (0.99, false)] {
            // Scale so that Σx² ≈ factor·threshold (exact powers of two would keep the
            // ratio; a general float scale is what a real row looks like).
            let scale = Float((factor * threshold / unit).squareRoot())
            let x = base.map { $0 * scale }
            let fast = kernels.row_sumsq_f(x, n)
            #expect(RMSKernel.certified(fast, n) == expectCertified,
                    "\(level) factor \(factor): Σ̂ = \(fast), threshold \(threshold)")
            var norm = try RMSNorm(dim: n, eps: Float(1e-40 as Double))
            norm.weight = Tensor.randomNormal([n], mean: 1, standardDeviation: 0.3, seed: 2)
            let before = Self.refusedRows()
            let input = try Tensor(shape: [1, n], scalars: x)
            let y = try InstructionSet.with(level) { try norm(input) }
            if !expectCertified { #expect(Self.refusedRows() > before, "\(level): the refused row was not counted") }
            let expected = try Reference.rmsNormDouble(input, weight: norm.weight, eps: norm.eps)
            let error = Reference.maxRowError(y, expected: expected)
            #expect(error <= forwardBound, "\(level) factor \(factor): error \(error)")
        }
    }

    /// The overflow edge: one element whose float square overflows (|x| = 2e19: x² =
    /// 4e38 > 3.4e38) makes the float sum infinite and the row takes the Double sum;
    /// 1.8e19 (x² = 3.24e38) stays certified. Both are within the bound.
    @Test(arguments: InstructionSet.supported)
    func overflowEdge(level: InstructionSet) throws {
        let n = 257
        let kernels = Kernels.rmsNorm(at: level)
        for (big, expectCertified) in [(Float(1.8e19), true), (Float(2e19), false)] {
            var x = Tensor.randomNormal([n], standardDeviation: 1e17, seed: 9).scalars
            x[130] = big
            let fast = kernels.row_sumsq_f(x, n)
            #expect(RMSKernel.certified(fast, n) == expectCertified, "\(level) \(big): Σ̂ = \(fast)")
            let input = try Tensor(shape: [1, n], scalars: x)
            let norm = try RMSNorm(dim: n)
            let y = try InstructionSet.with(level) { try norm(input) }
            let expected = try Reference.rmsNormDouble(input, weight: norm.weight, eps: norm.eps)
            #expect(Reference.maxRowError(y, expected: expected) <= forwardBound, "\(level) \(big)")
        }
    }

    /// NaN, infinity and a zero row are refused; the first two come out NaN, the zero
    /// row zero.
    @Test func specialRowsAreRefused() throws {
        let n = 40
        let kernels = Kernels.rmsNorm
        var row = [Float](repeating: 1, count: n)
        row[7] = .nan
        #expect(!RMSKernel.certified(kernels.row_sumsq_f(row, n), n))
        row[7] = .infinity
        #expect(!RMSKernel.certified(kernels.row_sumsq_f(row, n), n))
        #expect(!RMSKernel.certified(kernels.row_sumsq_f([Float](repeating: 0, count: n), n), n))
        let x = try Tensor(shape: [3, n], scalars: [Float](repeating: 1, count: n) + row + [Float](repeating: 0, count: n))
        let y = try RMSNorm(dim: n).callAsFunction(x).scalars
        #expect(y[n ..< 2 * n].allSatisfy { $0.isNaN })
        #expect(y[2 * n ..< 3 * n].allSatisfy { $0 == 0 })
        #expect(y[0 ..< n].allSatisfy { abs($0 - 1) < 1e-5 })
    }

    /// Random rows from the RMSNorm catalogue and from both certificate edges (scales
    /// about the underflow edge, 2^-66...2^-60, and the overflow edge, 1e18...2e19), with a
    /// random weight, offset and eps, at a random level: every one within 1e-6 of float64.
    /// NORMKIT_RMS_PROPERTY_ROWS sets the count (CI: the default; docs/numerics.md
    /// records one run of 10^6).
    @Test func property() throws {
        let rows = getenv("NORMKIT_RMS_PROPERTY_ROWS").flatMap { Int(String(cString: $0)) } ?? 1500
        var rng = TestRNG(seed: 0x5eed_0125)
        let kinds = Reference.RMSRow.allCases
        let levels = InstructionSet.supported
        var worst = 0.0, refused = 0
        let before = Self.refusedRows()
        for r in 0..<rows {
            let level = levels[r % levels.count]
            let n = [1, 2, 3, 5, 17, 64, 129, 257, 768, 1024, 4099][Int.random(in: 0..<11, using: &rng)]
            var x: [Float]
            switch Int.random(in: 0..<3, using: &rng) {
            case 0: x = kinds[Int.random(in: 0..<kinds.count, using: &rng)].values(dim: n, seed: rng.next())
            case 1:  // about the underflow edge: Σx² near n·2^-120 and below
                let scale = powf(2, Float.random(in: -66 ... -58, using: &rng))
                x = Tensor.randomNormal([n], standardDeviation: scale, seed: rng.next()).scalars
            default:  // about the overflow edge: some squares above float's largest
                x = Tensor.randomNormal([n], seed: rng.next()).scalars
                let big = Float.random(in: 1e18 ... 2e19, using: &rng)
                for _ in 0..<Int.random(in: 1...3, using: &rng) { x[Int.random(in: 0..<n, using: &rng)] = big }
            }
            let offset: Float = Bool.random(using: &rng) ? 1 : 0
            let eps: Float = [1e-5, 1e-6, 1e-12, Float(1e-40 as Double)][Int.random(in: 0..<4, using: &rng)]
            var norm = try RMSNorm(dim: n, eps: eps, weightOffset: offset)
            norm.weight = try Tensor(shape: [n], scalars: (0..<n).map { _ in Float.random(in: -2...2, using: &rng) })
            let input = try Tensor(shape: [1, n], scalars: x)
            if !RMSKernel.certified(Kernels.rmsNorm(at: level).row_sumsq_f(x, n), n) { refused += 1 }
            let y = try InstructionSet.with(level) { try norm(input) }
            let expected = try Reference.rmsNormDouble(input, weight: norm.weight, eps: eps, weightOffset: offset)
            let e = Reference.maxRowError(y, expected: expected)
            if e.isFinite { worst = max(worst, e) }
            #expect(e <= forwardBound || (expected.contains { !$0.isFinite } && y.scalars.allSatisfy(\.isNaN)),
                    "row \(r) n \(n) \(level): error \(e)")
        }
        #expect(Self.refusedRows() - before >= UInt64(refused))
        print("RMSFloatSumTests.property: \(rows) rows, worst \(worst), \(refused) refused by the float sum's certificate")
    }

    /// The process-wide count of RMSNorm rows refused by the certificate (other tests
    /// may add to it concurrently; it never goes down).
    static func refusedRows() -> UInt64 {
        var counts = [UInt64](repeating: 0, count: Int(NK_LN_COUNTS))
        counts.withUnsafeMutableBufferPointer { nk_ln_path_counts($0.baseAddress!) }
        return counts[Int(NK_RMS_DOUBLE_SUMSQ)]
    }
}
