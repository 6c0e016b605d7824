// The half-precision row kernels (LayerNorm's `forward_row_sampled_half`, RMSNorm's
// `forward_row_half`): rows of BFloat16 or Float16 normalised with the conversions in
// registers must give the bits of the float forward of the widened rows, rounded once,
// on every path a float row can take (LayerNorm: fast, refused by the sample, Double
// moments, Double affine, non-finite; RMSNorm: the float sum or the Double sum), in
// place and out of place, at every instruction-set level.

import CNormKernels
@testable import NormKit
import NormKitTesting
import Testing

@Suite("Half-precision row kernels")
struct HalfRowKernelTests {
    /// Every hard row of the catalogue, plus rows that send the row kernel to each of its
    /// fallbacks: a sample that misleads (the 32 sampled elements far from the rest), a NaN,
    /// an infinity, and rows whose bias cancels w·x̂ (the Double affine).
    static func rows(dim: Int) -> [[Float]] {
        var rows = Reference.HardRow.allCases.map { $0.values(dim: dim, seed: UInt64(dim)) }
        let noise = Tensor.randomNormal([dim], seed: 99).scalars
        let sampled = Set(sampledPositions(dim))
        rows.append(noise.enumerated().map { sampled.contains($0.offset) ? 60 + $0.element : $0.element })
        rows.append(noise.enumerated().map { $0.offset == dim / 3 ? .nan : $0.element })
        rows.append(noise.enumerated().map { $0.offset == dim - 1 ? -.infinity : $0.element })
        rows.append(noise.map { 1 + 1e-3 * $0 })
        return rows
    }

    /// A layer whose bias cancels w·x̂ on the last row kind (x̂ ≈ noise for 1 + 1e-3·noise),
    /// so some outputs are tiny against |w·x̂|: the float affine's certificate refuses them.
    static func layer(dim: Int) throws -> LayerNorm {
        var layer = try LayerNorm(dim: dim)
        layer.weight = Tensor.randomNormal([dim], mean: 1, standardDeviation: 0.3, seed: 5)
        let noise = Tensor.randomNormal([dim], seed: 99).scalars
        let w = layer.weight.scalars
        layer.bias = try Tensor(shape: [dim], scalars: (0 ..< dim).map { -w[$0] * noise[$0] * 0.999_999 })
        return layer
    }

    static func paths() -> [UInt64] {
        var counts = [UInt64](repeating: 0, count: Int(NK_LN_COUNTS))
        counts.withUnsafeMutableBufferPointer { nk_ln_path_counts($0.baseAddress!) }
        return counts
    }

    /// The norms with a half row kernel: LayerNorm (with a bias that cancels), RMSNorm,
    /// and RMSNorm with Gemma's weight offset.
    static func norms(dim: Int) throws -> [(String, any RowNormalization)] {
        var rms = try RMSNorm(dim: dim)
        rms.weight = Tensor.randomNormal([dim], mean: 1, standardDeviation: 0.3, seed: 6)
        var gemma = try RMSNorm(dim: dim, weightOffset: 1)
        gemma.weight = Tensor.randomNormal([dim], standardDeviation: 0.3, seed: 7)
        return [("LayerNorm", try layer(dim: dim)), ("RMSNorm", rms), ("RMSNorm offset 1", gemma)]
    }

    func check<T: HalfPrecisionElement>(_: T.Type) throws {
        let before = Self.paths()
        for level in InstructionSet.supported {
            try InstructionSet.with(level) {
                for dim in [1, 17, 768, 4099] {
                    let rows = Self.rows(dim: dim)
                    let x = HalfTensor<T>(rounding: try Tensor(shape: [rows.count, dim], scalars: rows.flatMap { $0 }))
                    for (name, norm) in try Self.norms(dim: dim) {
                        let expected = HalfTensor<T>(rounding: try norm.forward(Tensor(widening: x))).elements.map(\.bitPattern)
                        let input = x.elements
                        var out = [T](repeating: T(bitPattern: 0), count: input.count)
                        try input.withUnsafeBufferPointer { i in
                            try out.withUnsafeMutableBufferPointer { o in try norm.forward(i, into: o) }
                        }
                        var inPlace = input
                        try inPlace.withUnsafeMutableBufferPointer { p in try norm.forward(UnsafeBufferPointer(p), into: p) }
                        for r in 0 ..< rows.count {
                            let span = r * dim ..< (r + 1) * dim
                            #expect(out[span].map(\.bitPattern) == Array(expected[span]),
                                    "\(name) \(T.self) \(level) dim \(dim) row \(r): not the rounded float forward")
                            #expect(inPlace[span].map(\.bitPattern) == Array(expected[span]),
                                    "\(name) \(T.self) \(level) dim \(dim) row \(r): in place differs")
                        }
                    }
                }
            }
        }
        // Every fallback ran (the counts are process-wide and only grow).
        let after = Self.paths()
        for path in [NK_LN_SAMPLED_REFUSED, NK_LN_PATH_DOUBLE_MOMENTS, NK_LN_PATH_DOUBLE_AFFINE, NK_LN_PATH_NONFINITE,
                     NK_RMS_DOUBLE_SUMSQ] {
            #expect(after[Int(path)] > before[Int(path)], "path \(path) never taken")
        }
    }

    /// The floats whose top half is the bfloat16 pattern `high`, with low halves 0 and at
    /// and around the tie (0x7fff, 0x8000, 0x8001).
    static func bfloat16Ties(_ high: UInt32) -> [Float] {
        [0, 0x7fff, 0x8000, 0x8001].map { Float(bitPattern: high << 16 | $0) }
    }

    /// `values` with zeros appended up to a multiple of `dim` (whole rows of biases).
    static func padded(_ values: [Float], to dim: Int) -> [Float] {
        values + [Float](repeating: 0, count: (dim - values.count % dim) % dim)
    }

    /// With weight 0, y = fma(t, 0, b) = b exactly, so the row kernel's own narrowing
    /// (two vectors at a time where the level packs them) rounds b: every bfloat16
    /// pattern's neighbourhood (the low 16 bits at and around the tie), to nearest even.
    /// One row (the one-row kernel) and three (the multi-row driver: a row's output beside
    /// the next row's moments, and the last row's alone). Where a level narrows with an
    /// instruction that flushes float subnormals and checks a row once for them afterwards,
    /// the biases' subnormals fall in some rows of 4096 and not in others.
    func narrowing<T: HalfPrecisionElement>(_: T.Type, expected: (Float) -> UInt16?) throws {
        let dim = 4096
        // -0 is left out: t·0 + (-0) is +0 for t > 0.
        let biases = Self.padded((UInt32(0) ... 0xffff).flatMap(Self.bfloat16Ties).filter {
            $0.bitPattern != 0x8000_0000 && ($0.isFinite || ($0.isNaN && expected($0) != nil))
        }, to: dim)
        for rows in [1, 3] {
            try narrowing(T.self, expected: expected, biases: biases, rows: rows, dim: dim)
        }
    }

    func narrowing<T: HalfPrecisionElement>(_: T.Type, expected: (Float) -> UInt16?, biases: [Float], rows: Int,
                                            dim: Int) throws {
        let x = HalfTensor<T>(rounding: Tensor.randomNormal([rows, dim], seed: 3))
        for level in InstructionSet.supported {
            try InstructionSet.with(level) {
                var layer = try LayerNorm(dim: dim)
                layer.weight = Tensor(shape: [dim], repeating: 0)
                var y = [T](repeating: T(bitPattern: 0), count: rows * dim)
                var wrong = 0
                for start in stride(from: 0, to: biases.count, by: dim) {
                    let b = Array(biases[start ..< start + dim])
                    layer.bias = try Tensor(shape: [dim], scalars: b)
                    try x.elements.withUnsafeBufferPointer { i in
                        try y.withUnsafeMutableBufferPointer { o in try layer.forward(i, into: o) }
                    }
                    for r in 0 ..< rows {
                        for i in 0 ..< dim where expected(b[i]).map({ $0 != y[r * dim + i].bitPattern }) ?? false {
                            wrong += 1
                        }
                    }
                }
                #expect(wrong == 0,
                        "\(T.self) at \(level), \(rows) rows: \(wrong) of \(rows * biases.count) outputs not rounded to nearest even")
            }
        }
    }

    @Test func bfloat16RowKernelRoundsToNearestEven() throws {
        try narrowing(BFloat16.self) { BFloat16($0).bitPattern }
    }

    #if !(os(macOS) && arch(x86_64))
    @Test func float16RowKernelRoundsToNearestEven() throws {
        try narrowing(Float16.self) { $0.isNaN ? nil : Float16($0).bitPattern }
    }
    #endif

    /// On a CPU with AVX512_BF16 the avx512 level's LayerNorm and RMSNorm tables are a
    /// variant that narrows bfloat16 with VCVTNE2PS2BF16, and on one with F16C the avx2
    /// level's convert float16 with VCVTPH2PS/VCVTPS2PH; the tests above run them. This
    /// one runs the plain tables of the level (the integer code) on the same rows and
    /// compares the two, bit for bit: every pattern of the format at and around its ties
    /// (LayerNorm with weight 0 gives y = b), subnormal outputs included, and every hard
    /// row through both norms. Nothing to compare on a CPU without the extension.
    func compareVariant(level: Int32, format: Int32, ties: (UInt32) -> [Float]) throws {
        guard let variant = nk_layernorm_kernels_for(level), let plain = nk_layernorm_kernels_for_plain(level),
              let rmsVariant = nk_rmsnorm_kernels_for(level), let rmsPlain = nk_rmsnorm_kernels_for_plain(level),
              variant != plain
        else { return }
        let dim = 4096
        let biases = Self.padded((UInt32(0) ... 0xffff).flatMap(ties), to: dim)
        let noise = Tensor.randomNormal([1, dim], seed: 3)
        func half(_ t: Tensor) -> [UInt16] {
            format == NK_ELEM_BF16 ? HalfTensor<BFloat16>(rounding: t).elements.map(\.bitPattern)
                : t.scalars.map { Self.float16Bits($0) }
        }
        let x = half(noise)
        let zeros = [Float](repeating: 0, count: dim)
        var differing = 0
        var a = [UInt16](repeating: 0, count: dim), b = a
        var stats = [Double](repeating: 0, count: 2)
        for start in stride(from: 0, to: biases.count, by: dim) {
            let bias = Array(biases[start ..< start + dim])
            let bmax = bias.withUnsafeBufferPointer { ForwardParameters.largestMagnitude($0.baseAddress!, dim) }
            let ra = variant.pointee.forward_row_sampled_half(x, &a, dim, format, 1e-5, zeros, bias, 0, bmax, &stats)
            let rb = plain.pointee.forward_row_sampled_half(x, &b, dim, format, 1e-5, zeros, bias, 0, bmax, &stats)
            if ra != rb || (ra == 0 && a != b) { differing += 1 }
        }
        #expect(differing == 0, "LayerNorm: \(differing) rows differ between the variant and the plain table at \(level)")
        let weight = Tensor.randomNormal([dim], mean: 1, standardDeviation: 0.3, seed: 8).scalars
        let wmax = weight.withUnsafeBufferPointer { ForwardParameters.largestMagnitude($0.baseAddress!, dim) }
        for row in Self.rows(dim: dim) {
            let h = half(try Tensor(shape: [dim], scalars: row))
            let ra = variant.pointee.forward_row_sampled_half(h, &a, dim, format, 1e-5, weight, zeros, wmax, 0, &stats)
            let rb = plain.pointee.forward_row_sampled_half(h, &b, dim, format, 1e-5, weight, zeros, wmax, 0, &stats)
            #expect(ra == rb && (ra != 0 || a == b), "LayerNorm row differs at \(level)")
            let sa = rmsVariant.pointee.forward_row_half(h, &a, dim, format, 1e-6, weight, 0)
            let sb = rmsPlain.pointee.forward_row_half(h, &b, dim, format, 1e-6, weight, 0)
            #expect(sa == sb && (sa != 0 || a == b), "RMSNorm row differs at \(level)")
        }
    }

    /// The binary16 pattern nearest `v` (the kernel layer's baseline conversion, which the
    /// conversion tests check against every pattern).
    static func float16Bits(_ v: Float) -> UInt16 {
        var out: UInt16 = 0
        var value = v
        nk_half_kernels_for(NK_ISA_BASELINE)!.pointee.float16.narrow(&value, &out, 1)
        return out
    }

    @Test func avx512BF16VariantGivesThePlainTablesBits() throws {
        try compareVariant(level: NK_ISA_AVX512, format: NK_ELEM_BF16, ties: Self.bfloat16Ties)
    }

    /// float16's ties: the float bits of each binary16 value, and the 13 bits below them at
    /// and around half an ulp.
    @Test func avx2F16CVariantGivesThePlainTablesBits() throws {
        try compareVariant(level: NK_ISA_AVX2, format: NK_ELEM_F16) { bits in
            var wide: Float = 0
            var h = UInt16(truncatingIfNeeded: bits)
            nk_half_kernels_for(NK_ISA_BASELINE)!.pointee.float16.widen(&h, &wide, 1)
            guard wide.isFinite else { return [wide] }
            return [0, 0xfff, 0x1000, 0x1001].map { Float(bitPattern: wide.bitPattern | $0) }
        }
    }

    @Test func bfloat16RowsGiveTheRoundedFloatForwardOnEveryPath() throws { try check(BFloat16.self) }

    #if !(os(macOS) && arch(x86_64))
    @Test func float16RowsGiveTheRoundedFloatForwardOnEveryPath() throws { try check(Float16.self) }
    #endif
}
