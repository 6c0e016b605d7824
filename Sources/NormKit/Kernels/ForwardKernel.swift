// The LayerNorm forward kernel, one row at a time.
//
// For a row x of n floats, with weight w and bias b:
//
//     mean = Σx / n,  var = Σ(x - mean)² / n,  y = w ⊙ (x - mean) / sqrt(var + eps) + b
//
// Two paths, chosen per row from the row's own statistics (docs/numerics.md has the
// error argument):
//
// * Fast path: two BLAS reductions, S1 = sdot(x, 1) and S2 = sdot(x, x), then one
//   fused SIMD pass for the output. The variance S2/n - mean² cancels when mean² is
//   large against var, so the path is taken only when mean² <= var (at most one bit
//   lost), S2 is finite (no square overflowed) and S2/n >= 2^-96 (no square came near
//   the subnormal range). Random and real activations take it.
//
// * Careful path, for everything else (large mean over a small spread, huge or tiny
//   magnitudes, constant rows, NaN or infinity): scale the row by a power of two so
//   its largest magnitude is in [1, 4) (exact), centre it with saxpy, and keep
//   re-centring with saxpy on the residual mean Σ(z - shift)/n until that residual is
//   negligible (corrected two-pass, Chan-Golub-LeVeque). The statistics come from
//   sdot of the centred row, in float, on values whose own rounding is relative to
//   the spread rather than to the magnitude; the power of two is undone in Double.

import CNormKernels

/// The parameters a forward pass shares across rows.
struct ForwardParameters {
    var dim: Int
    var eps: Double
    /// `dim` weights (all ones for a layer without affine weights).
    var weight: UnsafePointer<Float>
    /// `dim` biases (all zeros for a layer without bias).
    var bias: UnsafePointer<Float>
    /// At least `min(dim, BLAS.maxChunk)` ones.
    var ones: UnsafePointer<Float>
    /// Whether fast-path rows may be written four at a time (see `ForwardKernel.run`).
    var groupRows = true
    /// The kernel layer's LayerNorm functions at the level in force for this call.
    var kernels: nk_layernorm_kernels
}

enum ForwardKernel {
    /// Inputs up to this many elements (4 MB in, 4 MB out) are written four rows at a
    /// time: measured on a 32 MB-L3 Zen 4, grouping wins up to about 12 MB of traffic
    /// ([1, 1024, 768]: 216 -> 188 us) and loses from 24 MB on ([4096, 768]: 0.89 -> 1.0 ms).
    static let groupedElementLimit = 1 << 20

    /// Normalises rows `rows` of `x` into `y` (which may not alias `x`), and writes
    /// each row's statistics into `mean`/`rstd` when they are given.
    ///
    /// With `parameters.groupRows`, rows go four at a time when all four take the fast
    /// path: their statistics first (two sdot each), then one SIMD pass that writes all
    /// four rows and loads each weight and bias once for the four. Swift compiles for
    /// baseline x86-64 (16-byte SSE registers), where the output pass is bound by loads
    /// and stores, not arithmetic; sharing the weight and bias loads cuts it by about a
    /// fifth when the data is in cache. From DRAM the four interleaved row streams run
    /// at half speed (measured: [8, 1024, 768] 2.1 ms one row at a time, 4.0 ms grouped),
    /// so callers group only cache-sized inputs (`groupedElementLimit`). Every element
    /// is computed by the same operations either way, so a row's bits do not depend on
    /// its neighbours or on how rows are grouped (or split over threads).
    static func run(
        x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, rows: Range<Int>,
        parameters p: ForwardParameters,
        mean: UnsafeMutablePointer<Double>? = nil, rstd: UnsafeMutablePointer<Double>? = nil
    ) {
        let n = p.dim
        var row = rows.lowerBound
        let end = rows.upperBound
        while p.groupRows && end &- row >= 4 {
            let x0 = x + row &* n, x1 = x0 + n, x2 = x1 + n, x3 = x2 + n
            let s0 = fastStatistics(x0, p), s1 = fastStatistics(x1, p)
            let s2 = fastStatistics(x2, p), s3 = fastStatistics(x3, p)
            if let s0, let s1, let s2, let s3 {
                affine(x0, y + row &* n, s0.mean, s0.rstd, p)
                affine(x1, y + (row &+ 1) &* n, s1.mean, s1.rstd, p)
                affine(x2, y + (row &+ 2) &* n, s2.mean, s2.rstd, p)
                affine(x3, y + (row &+ 3) &* n, s3.mean, s3.rstd, p)
                if let mean {
                    mean[row] = s0.mean; mean[row &+ 1] = s1.mean; mean[row &+ 2] = s2.mean; mean[row &+ 3] = s3.mean
                }
                if let rstd {
                    rstd[row] = s0.rstd; rstd[row &+ 1] = s1.rstd; rstd[row &+ 2] = s2.rstd; rstd[row &+ 3] = s3.rstd
                }
            } else {
                // Some row needs the careful path: each row on its own, reusing the sums
                // (four calls, not a loop over an array literal, which could allocate).
                @inline(__always) func one(_ r: Int, _ fast: RowStatistics?) {
                    let s = finish(x + r &* n, y + r &* n, fast, p)
                    mean?[r] = s.mean
                    rstd?[r] = s.rstd
                }
                one(row, s0); one(row &+ 1, s1); one(row &+ 2, s2); one(row &+ 3, s3)
            }
            row &+= 4
        }
        while row < end {
            let offset = row &* n
            let s = normalizeRow(x + offset, y + offset, p)
            mean?[row] = s.mean
            rstd?[row] = s.rstd
            row &+= 1
        }
    }

    @inline(__always)
    static func normalizeRow(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ p: ForwardParameters
    ) -> RowStatistics {
        finish(x, y, fastStatistics(x, p), p)
    }

    /// Writes row `x` into `y` from its fast-path statistics, or by the careful path
    /// when there are none.
    @inline(__always)
    static func finish(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ fast: RowStatistics?, _ p: ForwardParameters
    ) -> RowStatistics {
        guard let s = fast else { return carefulRow(x, y, p) }
        affine(x, y, s.mean, s.rstd, p)
        return s
    }

    /// y = ((x - mean)·rstd)·w + b by the kernel layer, with the mean as two floats.
    @inline(__always)
    static func affine(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ mean: Double, _ rstd: Double,
        _ p: ForwardParameters
    ) {
        let hi = Float(mean)
        let lo = Float(mean - Double(hi))
        p.kernels.affine(x, y, p.dim, hi, lo.isFinite ? lo : 0, Float(rstd), p.weight, p.bias)
    }

    /// The row's mean and rstd from S1 = sdot(x, 1) and S2 = sdot(x, x), or nil when
    /// the fast path's gate refuses the row (see the file comment).
    @inline(__always)
    static func fastStatistics(_ x: UnsafePointer<Float>, _ p: ForwardParameters) -> RowStatistics? {
        let n = p.dim
        let invN = 1 / Double(n)
        let s1 = BLAS.dotRepeating(n, x, p.ones)
        let s2 = BLAS.dot(n, x, x)
        let mean = s1 * invN
        let meanSquare = s2 * invN
        let variance = meanSquare - mean * mean
        // Every comparison is false for NaN, so NaN and infinity go careful.
        guard meanSquare.isFinite && meanSquare >= 0x1p-96 && mean * mean <= variance else { return nil }
        return RowStatistics(mean: mean, rstd: 1 / (variance + p.eps).squareRoot())
    }

    /// The exact path: scale, centre with saxpy until the residual mean vanishes, then
    /// normalise. See the file comment.
    @inline(never)
    static func carefulRow(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ p: ForwardParameters
    ) -> RowStatistics {
        let n = p.dim
        let range = SIMDKernels.range(x, n)
        guard range.finite else {
            y.update(repeating: .nan, count: n)
            return .nan
        }
        if range.min == range.max {
            // A constant row: x - mean is exactly 0, so y = 0·w + b: exactly the bias for
            // a finite weight, NaN where the weight is infinite or NaN (as IEEE and the
            // reference have it).
            p.kernels.affine(x, y, n, range.min, 0, 0, p.weight, p.bias)
            return RowStatistics(mean: Double(range.min), rstd: 1 / p.eps.squareRoot())
        }
        // z = x·2^k with max|z| in [1, 4): exact, and z² can neither overflow nor
        // lose the digits that matter to underflow.
        let amax = max(abs(range.min), abs(range.max))
        let k = min(max(-Int(amax.exponent), -126), 126)
        let scale = Float(sign: .plus, exponent: k, significand: 1)
        SIMDKernels.scale(x, y, n, scale)

        let invN = 1 / Double(n)
        // Centre on the float sum's mean, then on the residual mean, with saxpy.
        var shift = Float(BLAS.dotRepeating(n, y, p.ones) * invN)
        BLAS.axpyRepeating(n, -shift, p.ones, y)
        var centre = Double(shift)
        var residual = 0.0
        var meanSquare = 0.0
        for iteration in 0..<4 {
            residual = BLAS.dotRepeating(n, y, p.ones) * invN
            meanSquare = BLAS.dot(n, y, y) * invN
            // Done once the residual is 2^-20 of the spread: its own rounding is then
            // far below float precision of the centred values.
            if residual * residual <= meanSquare * 0x1p-40 || iteration == 3 { break }
            shift = Float(residual)
            BLAS.axpyRepeating(n, -shift, p.ones, y)
            centre += Double(shift)
        }
        let scaledVariance = max(meanSquare - residual * residual, 0)
        let unscale = Double(sign: .plus, exponent: -k, significand: 1)
        let variance = scaledVariance * unscale * unscale
        let rstd = 1 / (variance + p.eps).squareRoot()
        // x - mean = (z - residual)·2^-k, so x̂ = (z - residual)·(rstd·2^-k).
        p.kernels.affine(y, y, n, Float(residual), 0, Float(rstd * unscale), p.weight, p.bias)
        return RowStatistics(mean: (centre + residual) * unscale, rstd: rstd)
    }
}
