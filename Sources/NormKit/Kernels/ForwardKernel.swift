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
}

enum ForwardKernel {
    /// Normalises rows `rows` of `x` into `y` (which may not alias `x`), and writes
    /// each row's statistics into `mean`/`rstd` when they are given.
    static func run(
        x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, rows: Range<Int>,
        parameters p: ForwardParameters,
        mean: UnsafeMutablePointer<Double>? = nil, rstd: UnsafeMutablePointer<Double>? = nil
    ) {
        let n = p.dim
        for row in rows {
            let offset = row &* n
            let s = normalizeRow(x + offset, y + offset, p)
            mean?[row] = s.mean
            rstd?[row] = s.rstd
        }
    }

    @inline(__always)
    static func normalizeRow(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ p: ForwardParameters
    ) -> RowStatistics {
        let n = p.dim
        let invN = 1 / Double(n)
        let s1 = BLAS.dotRepeating(n, x, p.ones)
        let s2 = BLAS.dot(n, x, x)
        let mean = s1 * invN
        let meanSquare = s2 * invN
        let variance = meanSquare - mean * mean
        // Fast-path gate; every comparison is false for NaN, so NaN and infinity go careful.
        if meanSquare.isFinite && meanSquare >= 0x1p-96 && mean * mean <= variance {
            let rstd = 1 / (variance + p.eps).squareRoot()
            affine(x, y, n, shift: Float(mean), scale: Float(rstd), p.weight, p.bias)
            return RowStatistics(mean: mean, rstd: rstd)
        }
        return carefulRow(x, y, p)
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
            // A constant row: x - mean is exactly 0, so y is exactly the bias.
            y.update(from: p.bias, count: n)
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
        SIMDKernels.affineInPlace(y, n, shift: Float(residual), scale: Float(rstd * unscale), p.weight, p.bias)
        return RowStatistics(mean: (centre + residual) * unscale, rstd: rstd)
    }

    /// y = (x - shift)·scale·w + b over n elements.
    @inline(__always)
    static func affine(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int,
        shift: Float, scale: Float, _ w: UnsafePointer<Float>, _ b: UnsafePointer<Float>
    ) {
        SIMDKernels.affine(x, y, n, shift: shift, scale: scale, w, b)
    }
}
