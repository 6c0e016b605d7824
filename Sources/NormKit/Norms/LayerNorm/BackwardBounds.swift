// The backward row check (docs/numerics.md, "Backward"): whether a row's float
// rounding, bounded from its own maxima and sums, stays inside the tolerance. A row
// it refuses is recomputed in Double (BackwardJob.exactRow).

enum BackwardBounds {
    /// u = 2^-24, float's unit roundoff.
    static let u = 0x1p-24
    /// What a row may be off by, relative to max(1, max|dx|), before it is recomputed
    /// in Double: well under the 1e-5 NormKit promises, leaving room for second-order
    /// terms and the final rounding.
    static let tolerance = 4e-6
    /// The error assumed of forward's saved statistics: |δrstd|/rstd and |δmean|·rstd.
    /// The forward kernel's are a few 2^-53·n (docs/numerics.md); 8u leaves room for
    /// statistics made elsewhere.
    static let statisticsError = 8 * u
    /// λ for the probabilistic bound on the float rounding inside c's sum: a row
    /// exceeds it with probability below 2·exp(-λ²/2) = 3e-8 (Hoeffding).
    static let lambda = 6.0

    /// The fast path takes rows with |mean|·rstd up to this (the mean within 16
    /// standard deviations of zero): there β·x and γ cancel by at most that factor.
    static let fastMeanRatio = 16.0
    /// ... and rstd in this range: β = -rstd²·c and γ stay far from float's limits.
    static let fastRstdRange = 0x1p-30...0x1p30

    /// The fast path's check: whether the first-order bound on the row's |dx - dx64|
    /// (docs/numerics.md, "Backward") is within `tolerance·max(1, max|dx|)`. Per element
    /// of dx = (dy·w)·r + (x·β + γ) (each product and sum rounded, as at the baseline level;
    /// the other levels fuse two pairs, leaving two of these roundings out), in units of r: 3u·|g| from the product and r's
    /// rounding, 2u·r·C·|x| from x·β and β's rounding, u·(|γ|/r + |a + x̂·c|) from the
    /// inner sum and γ's rounding, u·|t| from the outer sum; with |g| <= T + A + X·C and
    /// r·|x| <= M + X that is u·(4T + 5A + 6X·C + 3M·C). Then as for the careful path:
    /// dsdot's error in a, c's error (d·dy rounded, dsdot; 12u per term), and the saved
    /// statistics'. False for NaN and for an infinite T (see `accepts`).
    @inline(__always)
    static func acceptsFast(a: Double, c: Double, tMax T: Double, xMax X: Double, meanRatio M: Double,
                     r: Double, n: Int) -> Bool {
        let u = Self.u
        let A = abs(a), C = abs(c)
        let gMax = T + A + X * C, gRms = T + A + C
        var bound = u * (4 * T + 5 * A + 6 * X * C + 3 * M * C)
        bound += 8 * u * gRms
        let typical = lambda * min(gMax, X * gRms) / Double(n).squareRoot()
        bound += 12 * u * X * min(gRms, typical)
        bound += statisticsError * (2 * X * C + C + X * A)
        // Float underflow: a few absolute 2^-149 roundings per element, scaled by r.
        // An infinite T means a float product or β, γ overflowed (huge gradients on a
        // tiny spread with a small eps) where dx itself may be finite: recompute in Double.
        return T.isFinite && r * bound + 0x1p-140 * (1 + r * T) <= tolerance * max(1, r * T)
    }

    /// The careful path's check: whether the first-order bound on the row's |dx - dx64|
    /// (docs/numerics.md, "Backward") is within `tolerance·max(1, max|dx|)`: per-element roundings,
    /// dsdot's float blocks, c's float products (probabilistic, λ), and the saved
    /// statistics' assumed error. False for NaN and for an infinite T: any NaN or
    /// infinite input makes a, c or T NaN or infinite, and a float overflow inside the
    /// row (dx may still be finite) makes T infinite.
    @inline(__always)
    static func accepts(a: Double, c: Double, tMax T: Double, xMax X: Double, r: Double,
                 scaledMean ms: Double, scaledRstd rs: Double, n: Int) -> Bool {
        let u = Self.u
        let A = abs(a), C = abs(c)
        // max|g| <= T + A + X·C (|g_i| <= |t_i| + |a| + |x̂_i·c|) and
        // rms(g) <= rms(t) + |a| + |c|·rms(x̂) <= T + A + C (rms(x̂) <= 1).
        let gMax = T + A + X * C, gRms = T + A + C
        var bound = u * (3 * T + 4 * A + 8 * X * C) + 2 * u * u * abs(ms) * rs * C
        bound += 8 * u * gRms  // δa: dsdot's float products and float blocks
        // x̂·δc, with up to 12u per term of c's sum: at worst Σ|g·x̂|/n <= rms(g);
        // probabilistically (Hoeffding, λ) λ·sqrt(Σ(g·x̂)²)/n, where
        // sqrt(Σ(g·x̂)²) <= sqrt(n)·min(max|g|, max|x̂|·rms(g)). Long rows use the latter.
        let typical = lambda * min(gMax, X * gRms) / Double(n).squareRoot()
        bound += 12 * u * X * min(gRms, typical)
        bound += statisticsError * (2 * X * C + C + X * A)
        return T.isFinite && r * bound + 0x1p-148 * T <= tolerance * max(1, r * T)
    }
}
