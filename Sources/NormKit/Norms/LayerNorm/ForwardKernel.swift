// The LayerNorm forward kernel, one row at a time.
//
// For a row x of n floats, with weight w and bias b:
//
//     mean = Σx / n,  var = Σ(x - mean)² / n,  y = w ⊙ (x - mean) / sqrt(var + eps) + b
//
// Every row takes the same path (docs/numerics.md has the error argument):
//
// 1. A shift s = Float(sdot(x, 1) / n): OpenBLAS's float sum, used only as a
//    centre, so its rounding (which depends on the BLAS kernel's summation order)
//    does not reach the result. A non-finite sum (overflow, NaN) gives s = 0.
// 2. One pass of the kernel layer: D1 = Σ(x - s) and D2 = Σ(x - s)², in Double.
//    Each difference and square is exact or rounded once in Double (a float squared
//    can neither overflow nor underflow a double), so nothing needs scaling.
//    mean = s + D1/n and var = D2/n - (D1/n)². That subtraction cancels only by the
//    factor 1 + δ²/var with δ = D1/n = mean - s; if δ² > var (the shift was more than
//    a standard deviation off: a float sum of huge values, or a constant row) the pass
//    is repeated once with s = Float(mean), which is then within a standard deviation
//    (every float of the row is at least |mean - s| from the mean).
// 3. One pass of the kernel layer: y = ((x - mean_hi) - mean_lo)·rstd·w + b, with
//    the Double mean split into two floats, so x - mean is right to float precision
//    however large the mean is against the spread.
//
// A row holding NaN or ±infinity makes D1 or D2 non-finite and comes out all NaN. A
// constant row gets s = its value on the second pass, so x - mean is exactly 0 and
// y is exactly b.

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
    /// The kernel layer's LayerNorm functions at the level in force for this call.
    var kernels: nk_layernorm_kernels
}

enum ForwardKernel {
    /// Normalises rows `rows` of `x` into `y` (which may not alias `x`), and writes
    /// each row's statistics into `mean`/`rstd` when they are given. A row's bits
    /// depend on that row (and the parameters) alone.
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

    /// One row: the shift from `cblas_sdot` (step 1 of the file comment), then the
    /// kernel layer's `forward_row` (steps 2 and 3).
    @inline(__always)
    static func normalizeRow(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ p: ForwardParameters
    ) -> RowStatistics {
        let shift = Float(BLAS.dotRepeating(p.dim, x, p.ones) / Double(p.dim))
        // A homogeneous tuple is laid out contiguously: stats[0], stats[1] of the C call.
        var stats = (Double.nan, Double.nan)
        withUnsafeMutableBytes(of: &stats) { raw in
            p.kernels.forward_row(x, y, p.dim, shift, p.eps, p.weight, p.bias, raw.baseAddress!.assumingMemoryBound(to: Double.self))
        }
        return RowStatistics(mean: stats.0, rstd: stats.1)
    }
}
