// The LayerNorm backward kernel (after llm.c's layernorm_backward), one block of
// rows at a time.
//
// For a row x of n floats with saved mean μ and rstd r (both Double, from forward),
// weight w and output gradient dy:
//
//     x̂ = (x - μ)·r,   g = dy ⊙ w,   a = Σg / n,   c = Σ g·x̂ / n
//     dx = r·(g - a - x̂·c) = r·g + β·x + γ,   β = -r²·c,   γ = r²·c·μ - r·a
//     dweight = Σ_rows dy ⊙ x̂,   dbias = Σ_rows dy
//
// Two paths per row (docs/numerics.md, "Backward", has the derivation and the error
// argument); both end with the same check, and a row the check refuses is recomputed
// in Double from x, dy and w alone (`exactRow`).
//
// * Fast path, for rows whose mean is within `fastMeanRatio` standard deviations of
//   zero (|μ|·r <= 16) and whose rstd is in [2^-30, 2^30]: random and real activations.
//   1. One SIMD pass: d = (x - μ_hi) - μ_lo (μ split into two floats, so d is exact
//      near the mean) and p = d·dy into a scratch row, tracking max|d|.
//   2. a = Σ dy·w / n and c = r·Σ p·w / n with `cblas_dsdot` (BLAS.dotDouble).
//   3. One SIMD pass: dx = (dy·w)·r + (x·β + γ), tracking max|dx|. Three products and
//      two sums per element, x read again instead of a stored x̂: the row's bytes are
//      read twice and p written once, which is what streaming from DRAM pays for.
//      β·x and γ cancel when |μ|·r is large, which is what the gate bounds.
//   4. `cblas_saxpy` adds r·p and dy into the block's partial dweight and dbias.
// * Careful path, for every other row (a mean far from zero against the spread, a
//   spread above ~1e9 or below ~1e-9, NaN): x̂ = ((x - μ_hi) - μ_lo)·r into a scratch
//   row (rows with a spread above ~1e30 first scaled by a power of two, so that x - μ
//   and r stay inside float's range), p = dy·x̂, a and c from `cblas_dsdot`, then
//   dx = r·((g - a) - x̂·c) from the stored x̂: nothing cancels but t itself.
//
// The check bounds the row's float rounding (and the saved statistics' error) from
// T = max|t|, |a|, |c| and max|x̂|. Where g - a - x̂·c cancels (dy nearly in the span
// of 1 and x̂, e.g. dy = y on a row of small spread) the bound fails and the row takes
// the Double fallback. Random and real gradients do not.
//
// Memory: both passes prefetch the lines `prefetchDistance` floats ahead (a few rows):
// the hardware prefetchers stop at 4 KB pages and do not run ahead while the BLAS
// calls work on cached rows, and without it the kernel streaming from DRAM was 30-45%
// slower (docs/performance.md, "Backward"). An accumulating call writes the row's gradient to a scratch row and adds
// it into dx with saxpy only once the row is accepted: a rejected row must find dx as
// it was.
//
// Determinism: rows are grouped into fixed blocks of `blockRows`; each block's
// partial sums are accumulated in row order inside the block, and the caller adds
// the partials in block order (in Double). Block boundaries do not depend on how
// blocks are spread over threads, and a row's path depends on its own statistics
// only, so the result is bitwise the same for every thread count.
//
// No fused multiply-add (see SIMDKernels): multiplies and adds round separately, and
// the error bounds assume exactly that.

enum BackwardKernel {
    /// Rows per block of partial weight/bias gradients. Fixed: changing it changes
    /// the rounding of dweight and dbias (not of dx).
    static let blockRows = 64

    /// The number of blocks for `rows` rows.
    static func blockCount(rows: Int) -> Int { (rows &+ blockRows &- 1) / blockRows }

    /// Adds `blocks` partial vectors of `dim` floats, in block order, in Double.
    static func reduce(_ partials: UnsafePointer<Float>, blocks: Int, dim: Int,
                       into sums: UnsafeMutablePointer<Double>) {
        sums.update(repeating: 0, count: dim)
        for b in 0..<blocks {
            let p = partials + b &* dim
            for j in 0..<dim { sums[j] += Double(p[j]) }
        }
    }
}

/// One backward call's inputs, outputs and scratch, as raw pointers.
///
/// `run(blocks:)` may be called for disjoint block ranges from several threads at
/// once: each block writes only its own rows of `dx`, its own slice of the partial
/// buffers and its own `fallbackRows` entry. That is what makes it `@unchecked Sendable`.
struct BackwardJob: @unchecked Sendable {
    var dim: Int
    var rows: Int
    /// The layer's eps, for the Double fallback's recomputed statistics.
    var eps: Double
    var x: UnsafePointer<Float>
    var dy: UnsafePointer<Float>
    var dx: UnsafeMutablePointer<Float>
    /// Whether dx is added into (`dx += ...`) rather than overwritten.
    var accumulate: Bool
    var mean: UnsafePointer<Double>
    var rstd: UnsafePointer<Double>
    /// The effective weight: `dim` floats, ones for a layer without affine weights.
    var weight: UnsafePointer<Float>
    /// `blockCount × dim` partial sums of dy ⊙ x̂, or nil when the weight gradient is not wanted.
    var partialWeight: UnsafeMutablePointer<Float>?
    /// `blockCount × dim` partial sums of dy, or nil when the bias gradient is not wanted.
    var partialBias: UnsafeMutablePointer<Float>?
    /// `blockCount` counts of rows that took the Double fallback, or nil.
    var fallbackRows: UnsafeMutablePointer<Int>?

    /// Processes every row of blocks `blocks`. Allocates one scratch buffer of
    /// 3·dim floats per call, nothing per row.
    func run(blocks: Range<Int>) {
        let n = dim
        // 64-byte aligned: the BLAS kernels read p with 64-byte loads.
        let raw = UnsafeMutableRawPointer.allocate(byteCount: 3 &* n &* MemoryLayout<Float>.stride, alignment: 64)
        defer { raw.deallocate() }
        let scratch = raw.bindMemory(to: Float.self, capacity: 3 &* n)
        let xhat = scratch, p = scratch + n, delta = scratch + 2 &* n
        for b in blocks {
            let first = b &* BackwardKernel.blockRows
            let end = min(rows, first &+ BackwardKernel.blockRows)
            let pw = partialWeight.map { $0 + b &* n }
            let pb = partialBias.map { $0 + b &* n }
            pw?.update(repeating: 0, count: n)
            pb?.update(repeating: 0, count: n)
            var fallbacks = 0
            for row in first..<end {
                let result = self.row(row, xhat: xhat, p: p, delta: delta)
                if result.fellBack { fallbacks &+= 1 }
                let offset = row &* n
                if let pw { BLAS.axpy(n, result.pScale, p, pw) }
                if let pb { BLAS.axpy(n, 1, dy + offset, pb) }
            }
            fallbackRows?[b] = fallbacks
        }
    }

    /// u = 2^-24, float's unit roundoff.
    static let u = 0x1p-24
    /// What a row may be off by, relative to max(1, max|dx|), before it is recomputed
    /// in Double: well under the 1e-5 NormKit promises, leaving room for second-order
    /// terms and the final rounding.
    static let tolerance = 4e-6
    /// The error assumed of forward's saved statistics: |δrstd|/rstd and |δmean|·rstd.
    /// The forward kernel's are a few u (docs/numerics.md); 8u leaves a margin.
    static let statisticsError = 8 * u
    /// λ for the probabilistic bound on the float rounding inside c's sum: a row
    /// exceeds it with probability below 2·exp(-λ²/2) = 3e-8 (Hoeffding).
    static let lambda = 6.0

    /// The fast path takes rows with |mean|·rstd up to this (the mean within 16
    /// standard deviations of zero): there β·x and γ cancel by at most that factor.
    static let fastMeanRatio = 16.0
    /// ... and rstd in this range: β = -rstd²·c and γ stay far from float's limits.
    static let fastRstdRange = 0x1p-30...0x1p30

    /// How far ahead (in floats) the passes prefetch: three rows of 768. Distances
    /// from 768 to 4608 measured the same.
    static let prefetchDistance = 2304

    /// Writes row `row` of dx, and into `p` the row's dweight term divided by `pScale`
    /// (dy ⊙ x̂ = pScale·p). `fellBack` tells whether the row took the Double fallback.
    @inline(__always)
    func row(_ row: Int, xhat: UnsafeMutablePointer<Float>, p: UnsafeMutablePointer<Float>,
             delta: UnsafeMutablePointer<Float>) -> (pScale: Float, fellBack: Bool) {
        let n = dim
        let offset = row &* n
        let x = self.x + offset, dy = self.dy + offset, dx = self.dx + offset
        let mu = mean[row], r = rstd[row]
        guard mu.isFinite && r.isFinite && r > 0 else {
            // Forward saw NaN or infinity in this row: its output was NaN, so is its gradient.
            nanRow(dx, p, n)
            return (1, false)
        }
        // Prefetch this far ahead while the rest of the tensor lasts (the current
        // row, harmlessly, near the end).
        let ahead = offset &+ n &+ Self.prefetchDistance <= rows &* n ? Self.prefetchDistance : 0
        let accepted: Bool
        let pScale: Float
        if Self.fastRstdRange.contains(r) && abs(mu) * r <= Self.fastMeanRatio {
            accepted = fastRow(x, dy, dx, p, delta, n, mean: mu, rstd: r, ahead: ahead)
            pScale = Float(r)
        } else {
            accepted = carefulRow(x, dy, dx, xhat, p, delta, n, mean: mu, rstd: r, ahead: ahead)
            pScale = 1
        }
        if accepted {
            if accumulate { BLAS.axpy(n, 1, delta, dx) }
            return (pScale, false)
        }
        exactRow(x, dy, dx, p, n)
        return (1, true)
    }

    /// The fast path (see the file comment): p = d·dy with d = x - μ, then
    /// dx = (dy·w)·r + (x·β + γ) into dx (into `delta` when accumulating). Returns
    /// whether the check accepts the row.
    @inline(__always)
    func fastRow(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                 _ p: UnsafeMutablePointer<Float>, _ delta: UnsafeMutablePointer<Float>, _ n: Int,
                 mean mu: Double, rstd r: Double, ahead: Int) -> Bool {
        let invN = 1 / Double(n)
        let mHi = Float(mu)
        let mLo = Float(mu - Double(mHi))
        let dMax = BackwardSIMD.centre(x, dy, p, n, meanHi: mHi, meanLo: mLo, ahead: ahead)
        let a = BLAS.dotDouble(n, dy, weight) * invN
        let c = r * (BLAS.dotDouble(n, p, weight) * invN)
        let beta = -(r * r * c), gamma = r * (r * c * mu - a)
        let eMax = BackwardSIMD.affineGradient(
            dy, weight, x, accumulate ? delta : dx, n, rstd: Float(r), beta: Float(beta), gamma: Float(gamma),
            prefetch: UnsafePointer(dx + ahead))
        // max|x̂| from max|d|: d is x - μ up to 3u of itself (and 2u² of the mean).
        let M = abs(mu) * r
        let X = Double(dMax) * r * (1 + 4 * Self.u) + 2 * Self.u * Self.u * M
        return acceptsFast(a: a, c: c, tMax: Double(eMax) / r, xMax: X, meanRatio: M, r: r, n: n)
    }

    /// The careful path (see the file comment): x̂ into `xhat`, p = dy·x̂, then
    /// dx = r·((g - a) - x̂·c). Returns whether the check accepts the row.
    @inline(__always)
    func carefulRow(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                    _ xhat: UnsafeMutablePointer<Float>, _ p: UnsafeMutablePointer<Float>,
                    _ delta: UnsafeMutablePointer<Float>, _ n: Int,
                    mean mu: Double, rstd r: Double, ahead: Int) -> Bool {
        let invN = 1 / Double(n)
        let a = BLAS.dotDouble(n, dy, weight) * invN

        // x̂ = (x·s - μ·s)·(r/s) with s a power of two: 1 unless r < 2^-100 (a spread
        // above ~1e30), where x - μ could overflow and r is near float's subnormals.
        // Then x·s (exact) goes to the scratch row first, and x̂ is computed in place.
        var source = x, s = 1.0, rs = r
        if r < 0x1p-100 {
            s = Double(sign: .plus, exponent: max(r.exponent, -149), significand: 1)
            rs = r / s
            SIMDKernels.scale(x, xhat, n, Float(s))
            source = UnsafePointer(xhat)
        }
        let ms = mu * s
        let mHi = Float(ms)
        let mLo = Float(ms - Double(mHi))
        let range = BackwardSIMD.normalize(
            source, dy, xhat, p, n, meanHi: mHi, meanLo: mLo, rstd: Float(rs), ahead: ahead)
        let c = BLAS.dotDouble(n, p, weight) * invN
        let tMax = BackwardSIMD.combine(
            dy, weight, xhat, accumulate ? delta : dx, n, a: Float(a), c: Float(c), rstd: Float(r),
            prefetch: UnsafePointer(dx + ahead))

        // max|x̂| from the range of x (·s): exact up to the rounding of x̂ itself.
        let xMax = max(Double(range.max) - ms, ms - Double(range.min)) * rs
        return accepts(a: a, c: c, tMax: Double(tMax), xMax: xMax, r: r, scaledMean: ms, scaledRstd: rs, n: n)
    }

    /// The fast path's check: whether the first-order bound on the row's |dx - dx64|
    /// (docs/numerics.md, "Backward") is within `tolerance·max(1, max|dx|)`. Per element
    /// of dx = (dy·w)·r + (x·β + γ), in units of r: 3u·|g| from the product and r's
    /// rounding, 2u·r·C·|x| from x·β and β's rounding, u·(|γ|/r + |a + x̂·c|) from the
    /// inner sum and γ's rounding, u·|t| from the outer sum; with |g| <= T + A + X·C and
    /// r·|x| <= M + X that is u·(4T + 5A + 6X·C + 3M·C). Then as for the careful path:
    /// dsdot's error in a, c's error (d·dy rounded, dsdot; 12u per term), and the saved
    /// statistics'. False for NaN and for an infinite T (see `accepts`).
    @inline(__always)
    func acceptsFast(a: Double, c: Double, tMax T: Double, xMax X: Double, meanRatio M: Double,
                     r: Double, n: Int) -> Bool {
        let u = Self.u
        let A = abs(a), C = abs(c)
        let gMax = T + A + X * C, gRms = T + A + C
        var bound = u * (4 * T + 5 * A + 6 * X * C + 3 * M * C)
        bound += 8 * u * gRms
        let typical = Self.lambda * min(gMax, X * gRms) / Double(n).squareRoot()
        bound += 12 * u * X * min(gRms, typical)
        bound += Self.statisticsError * (2 * X * C + C + X * A)
        // Float underflow: a few absolute 2^-149 roundings per element, scaled by r.
        // An infinite T means a float product or β, γ overflowed (huge gradients on a
        // tiny spread with a small eps) where dx itself may be finite: recompute in Double.
        return T.isFinite && r * bound + 0x1p-140 * (1 + r * T) <= Self.tolerance * max(1, r * T)
    }

    /// The careful path's check: whether the first-order bound on the row's |dx - dx64|
    /// (docs/numerics.md, "Backward") is within `tolerance·max(1, max|dx|)`: per-element roundings,
    /// dsdot's float blocks, c's float products (probabilistic, λ), and the saved
    /// statistics' assumed error. False for NaN and for an infinite T: any NaN or
    /// infinite input makes a, c or T NaN or infinite, and a float overflow inside the
    /// row (dx may still be finite) makes T infinite.
    @inline(__always)
    func accepts(a: Double, c: Double, tMax T: Double, xMax X: Double, r: Double,
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
        let typical = Self.lambda * min(gMax, X * gRms) / Double(n).squareRoot()
        bound += 12 * u * X * min(gRms, typical)
        bound += Self.statisticsError * (2 * X * C + C + X * A)
        return T.isFinite && r * bound + 0x1p-148 * T <= Self.tolerance * max(1, r * T)
    }

    /// The Double fallback: statistics, x̂, a, c and dx all recomputed in Double from
    /// x, dy and w, as Reference does; p rewritten from the exact x̂.
    @inline(never)
    func exactRow(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                  _ p: UnsafeMutablePointer<Float>, _ n: Int) {
        let nd = Double(n)
        var sum = 0.0
        for i in 0..<n { sum += Double(x[i]) }
        var mu = sum / nd
        var correction = 0.0
        for i in 0..<n { correction += Double(x[i]) - mu }
        mu += correction / nd
        var squares = 0.0
        for i in 0..<n {
            let d = Double(x[i]) - mu
            squares += d * d
        }
        let r = 1 / (squares / nd + eps).squareRoot()
        var sg = 0.0, sgx = 0.0
        for i in 0..<n {
            let g = Double(dy[i]) * Double(weight[i])
            sg += g
            sgx += g * ((Double(x[i]) - mu) * r)
        }
        let a = sg / nd, c = sgx / nd
        for i in 0..<n {
            let xh = (Double(x[i]) - mu) * r
            let v = r * (Double(dy[i]) * Double(weight[i]) - a - xh * c)
            dx[i] = accumulate ? Float(Double(dx[i]) + v) : Float(v)
            p[i] = Float(Double(dy[i]) * xh)
        }
    }

    /// A row whose statistics are NaN: dx (and dx's accumulation) NaN, p NaN.
    @inline(never)
    func nanRow(_ dx: UnsafeMutablePointer<Float>, _ p: UnsafeMutablePointer<Float>, _ n: Int) {
        dx.update(repeating: .nan, count: n)
        p.update(repeating: .nan, count: n)
    }
}

/// The element-wise passes of the backward row, over raw pointers with scalar tails
/// that compute exactly what the vector body does.
///
/// Two SIMD8<Float> per step rather than one SIMD16: on the baseline x86-64 target
/// a SIMD16 is four SSE registers, and the passes' constants and accumulators then
/// spill (the careful pass 1 ran 1.6x slower). Running maxima use
/// `replace(with:where: v .> m)`, which compiles to maxps; `pointwiseMax` compiles to a
/// per-lane scalar loop (it orders NaN) and was 30x slower. NaN lanes are skipped by
/// the maximum, which is safe here: any NaN input also makes the row's a or c NaN, and
/// the check rejects it. The fast path's passes keep one maximum per SIMD8 half (two
/// independent maxps chains per step, not one chain of two).
enum BackwardSIMD {
    typealias V = SIMD8<Float>

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> V {
        UnsafeRawPointer(p).loadUnaligned(as: V.self)
    }

    @inline(__always)
    static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
    }

    /// The fast path's first pass: d = (x - meanHi) - meanLo and p = d·dy into `p`;
    /// returns max|d|. Prefetches x and dy `ahead` floats on.
    @inline(__always)
    static func centre(
        _ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ p: UnsafeMutablePointer<Float>, _ n: Int,
        meanHi: Float, meanLo: Float, ahead: Int
    ) -> Float {
        let hv = V(repeating: meanHi), lv = V(repeating: meanLo)
        var m0 = V(), m1 = V()
        var i = 0
        while i &+ 16 <= n {
            Prefetch.line(x + (i &+ ahead))
            Prefetch.line(dy + (i &+ ahead))
            let d0 = (load(x + i) - hv) - lv
            let d1 = (load(x + (i &+ 8)) - hv) - lv
            store(d0 * load(dy + i), p + i)
            store(d1 * load(dy + (i &+ 8)), p + (i &+ 8))
            let a0 = magnitude(d0), a1 = magnitude(d1)
            m0.replace(with: a0, where: a0 .> m0)
            m1.replace(with: a1, where: a1 .> m1)
            i &+= 16
        }
        m0.replace(with: m1, where: m1 .> m0)
        var dMax = largest(m0)
        while i < n {
            let d = (x[i] - meanHi) - meanLo
            p[i] = d * dy[i]
            dMax = Swift.max(dMax, abs(d))
            i &+= 1
        }
        return dMax
    }

    /// The fast path's second pass: out = (dy·w)·rstd + (x·beta + gamma); returns
    /// max|out|. Prefetches the lines from `prefetch` on (the output rows ahead: for an
    /// accumulating call `out` is a scratch row, and the real output is what needs fetching).
    @inline(__always)
    static func affineGradient(
        _ dy: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
        _ out: UnsafeMutablePointer<Float>, _ n: Int, rstd: Float, beta: Float, gamma: Float,
        prefetch: UnsafePointer<Float>
    ) -> Float {
        let rv = V(repeating: rstd), bv = V(repeating: beta), gv = V(repeating: gamma)
        var m0 = V(), m1 = V()
        var i = 0
        while i &+ 16 <= n {
            Prefetch.line(prefetch + i)
            let e0 = (load(dy + i) * load(w + i)) * rv + (load(x + i) * bv + gv)
            let e1 = (load(dy + (i &+ 8)) * load(w + (i &+ 8))) * rv + (load(x + (i &+ 8)) * bv + gv)
            store(e0, out + i)
            store(e1, out + (i &+ 8))
            let a0 = magnitude(e0), a1 = magnitude(e1)
            m0.replace(with: a0, where: a0 .> m0)
            m1.replace(with: a1, where: a1 .> m1)
            i &+= 16
        }
        m0.replace(with: m1, where: m1 .> m0)
        var eMax = largest(m0)
        while i < n {
            let e = (dy[i] * w[i]) * rstd + (x[i] * beta + gamma)
            out[i] = e
            eMax = Swift.max(eMax, abs(e))
            i &+= 1
        }
        return eMax
    }

    /// x̂ = ((x - meanHi) - meanLo)·rstd into `xhat` (which may be `x`), p = dy·x̂
    /// into `p`; returns the smallest and largest x. Prefetches x and dy `ahead` floats on.
    @inline(__always)
    static func normalize(
        _ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
        _ xhat: UnsafeMutablePointer<Float>, _ p: UnsafeMutablePointer<Float>, _ n: Int,
        meanHi: Float, meanLo: Float, rstd: Float, ahead: Int
    ) -> (min: Float, max: Float) {
        let hv = V(repeating: meanHi), lv = V(repeating: meanLo), rv = V(repeating: rstd)
        var lo = hv, hi = hv
        var i = 0
        while i &+ 16 <= n {
            Prefetch.line(x + (i &+ ahead))
            Prefetch.line(dy + (i &+ ahead))
            let x0 = load(x + i), x1 = load(x + (i &+ 8))
            let v0 = ((x0 - hv) - lv) * rv
            let v1 = ((x1 - hv) - lv) * rv
            store(v0, xhat + i)
            store(v1, xhat + (i &+ 8))
            store(v0 * load(dy + i), p + i)
            store(v1 * load(dy + (i &+ 8)), p + (i &+ 8))
            lo.replace(with: x0, where: x0 .< lo)
            hi.replace(with: x0, where: x0 .> hi)
            lo.replace(with: x1, where: x1 .< lo)
            hi.replace(with: x1, where: x1 .> hi)
            i &+= 16
        }
        var mn = smallest(lo), mx = largest(hi)
        while i < n {
            let xv = x[i]
            let v = ((xv - meanHi) - meanLo) * rstd
            xhat[i] = v
            p[i] = v * dy[i]
            mn = Swift.min(mn, xv)
            mx = Swift.max(mx, xv)
            i &+= 1
        }
        return (mn, mx)
    }

    /// t = (dy·w - a) - x̂·c;  dx = rstd·t. Returns max|t|. Prefetches the lines
    /// from `prefetch` on (the output rows ahead: for an accumulating call `dx` is a
    /// scratch row, and the real output is what needs fetching).
    @inline(__always)
    static func combine(
        _ dy: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ xhat: UnsafePointer<Float>,
        _ dx: UnsafeMutablePointer<Float>, _ n: Int, a: Float, c: Float, rstd: Float,
        prefetch: UnsafePointer<Float>
    ) -> Float {
        let av = V(repeating: a), cv = V(repeating: c), rv = V(repeating: rstd)
        var tm = V()
        var i = 0
        while i &+ 16 <= n {
            Prefetch.line(prefetch + i)
            let t0 = (load(dy + i) * load(w + i) - av) - load(xhat + i) * cv
            let t1 = (load(dy + (i &+ 8)) * load(w + (i &+ 8)) - av) - load(xhat + (i &+ 8)) * cv
            store(t0 * rv, dx + i)
            store(t1 * rv, dx + (i &+ 8))
            let m0 = magnitude(t0), m1 = magnitude(t1)
            tm.replace(with: m0, where: m0 .> tm)
            tm.replace(with: m1, where: m1 .> tm)
            i &+= 16
        }
        var tMax = largest(tm)
        while i < n {
            let t = (dy[i] * w[i] - a) - xhat[i] * c
            dx[i] = t * rstd
            tMax = Swift.max(tMax, abs(t))
            i &+= 1
        }
        return tMax
    }

    /// The largest and smallest lane, by halving with maxps/minps (the generic
    /// `SIMD.max()` is an unspecialised call that orders NaN, 3% of the whole pass).
    @inline(__always)
    static func largest(_ v: V) -> Float {
        var h = v.lowHalf
        let hi = v.highHalf
        h.replace(with: hi, where: hi .> h)
        var q = h.lowHalf
        let qh = h.highHalf
        q.replace(with: qh, where: qh .> q)
        return q.x > q.y ? q.x : q.y
    }

    @inline(__always)
    static func smallest(_ v: V) -> Float {
        var h = v.lowHalf
        let hi = v.highHalf
        h.replace(with: hi, where: hi .< h)
        var q = h.lowHalf
        let qh = h.highHalf
        q.replace(with: qh, where: qh .< q)
        return q.x < q.y ? q.x : q.y
    }

    /// |v|, by clearing the sign bits (andps).
    @inline(__always)
    static func magnitude(_ v: V) -> V {
        unsafeBitCast(unsafeBitCast(v, to: SIMD8<UInt32>.self) & 0x7fff_ffff, to: V.self)
    }
}
