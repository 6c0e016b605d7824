// The LayerNorm backward kernel (after llm.c's layernorm_backward), one block of
// rows at a time.
//
// For a row x of n floats with saved mean μ and rstd r (both Double, from forward),
// weight w and output gradient dy:
//
//     x̂ = (x - μ)·r,   g = dy ⊙ w,   a = Σg / n,   c = Σ g·x̂ / n
//     dx = r·(g - a - x̂·c)
//     dweight = Σ_rows dy ⊙ x̂,   dbias = Σ_rows dy
//
// Per row (docs/numerics.md, "Backward", has the derivation and the error argument):
//
// 1. One SIMD pass rebuilds x̂ = ((x·s - μ_hi) - μ_lo)·(r/s) into a scratch row and
//    p = dy ⊙ x̂ into another. μ is split into two floats, so x - μ_hi is exact where
//    x is near the mean (Sterbenz) and only μ_lo is rounded: a float μ near 1e6 would
//    be off by 0.03. s is a power of two (1 unless the spread is above ~1e30) that
//    keeps x - μ and r inside float's range.
// 2. a and c from `cblas_dsdot` (float products and sum in Double): BLAS.dotDouble.
// 3. One SIMD pass writes dx = r·((g - a) - x̂·c), tracking max|g| and max|t|.
// 4. A check bounds that row's float rounding (and the saved statistics' error) from
//    those maxima. Where g - a - x̂·c cancels (dy nearly in the span of 1 and x̂) the
//    bound fails and the row is recomputed in Double from x, dy and w alone, with
//    statistics recomputed two-pass. Random and real gradients never take that path.
// 5. `cblas_saxpy` adds p and dy into the block's partial dweight and dbias.
//
// Determinism: rows are grouped into fixed blocks of `blockRows`; each block's
// partial sums are accumulated in row order inside the block, and the caller adds
// the partials in block order (in Double). Block boundaries do not depend on how
// blocks are spread over threads, so the result is bitwise the same for every
// thread count.
//
// No fused multiply-add (see SIMDKernels): multiplies and adds round separately, and
// the error bound in step 4 assumes exactly that.

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
    /// 2·dim floats per call, nothing per row.
    func run(blocks: Range<Int>) {
        let n = dim
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 2 &* n)
        defer { scratch.deallocate() }
        let xhat = scratch, p = scratch + n
        for b in blocks {
            let first = b &* BackwardKernel.blockRows
            let end = min(rows, first &+ BackwardKernel.blockRows)
            let pw = partialWeight.map { $0 + b &* n }
            let pb = partialBias.map { $0 + b &* n }
            pw?.update(repeating: 0, count: n)
            pb?.update(repeating: 0, count: n)
            var fallbacks = 0
            for row in first..<end {
                if !self.row(row, xhat: xhat, p: p) { fallbacks &+= 1 }
                let offset = row &* n
                if let pw { BLAS.axpy(n, 1, p, pw) }
                if let pb { BLAS.axpy(n, 1, dy + offset, pb) }
            }
            fallbackRows?[b] = fallbacks
        }
    }

    /// u = 2^-24, float's unit roundoff.
    static let u = 0x1p-24
    /// What a fast-path row may be off by, relative to max(1, max|dx|), before it is
    /// recomputed in Double: well under the 1e-5 NormKit promises, leaving room for
    /// second-order terms and the final rounding.
    static let tolerance = 4e-6
    /// The error assumed of forward's saved statistics: |δrstd|/rstd and |δmean|·rstd.
    /// The forward kernel's are a few u (docs/numerics.md); 8u leaves a margin.
    static let statisticsError = 8 * u
    /// λ for the probabilistic bound on the float rounding inside c's sum.
    static let lambda = 4.0

    /// Writes row `row` of dx and its p = dy ⊙ x̂ into `p`. Returns false when the
    /// row took the Double fallback.
    @inline(__always)
    func row(_ row: Int, xhat: UnsafeMutablePointer<Float>, p: UnsafeMutablePointer<Float>) -> Bool {
        let n = dim
        let offset = row &* n
        let x = self.x + offset, dy = self.dy + offset, dx = self.dx + offset
        let mu = mean[row], r = rstd[row]
        guard mu.isFinite && r.isFinite && r > 0 else {
            // Forward saw NaN or infinity in this row: its output was NaN, so is its gradient.
            nanRow(dx, p, n)
            return true
        }
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
        let range = BackwardSIMD.normalize(source, dy, xhat, p, n, meanHi: mHi, meanLo: mLo, rstd: Float(rs))
        let c = BLAS.dotDouble(n, p, weight) * invN
        let tMax = BackwardSIMD.combine(
            dy, weight, xhat, dx, n, a: Float(a), c: Float(c), rstd: Float(r), accumulate: accumulate)

        // First-order bound on |dx - dx64| over the row (docs/numerics.md, "Backward"),
        // from T = max|t|, X = max|x̂|, |a| and |c|: per-element roundings, c's float
        // products (probabilistic, λ), the saved statistics' assumed error.
        let u = Self.u
        let X = max(Double(range.max) - ms, ms - Double(range.min)) * rs
        let T = Double(tMax), A = abs(a), C = abs(c)
        var bound = u * (3 * T + 4 * A + 8 * X * C) + 2 * u * u * abs(ms) * rs * C
        bound += 5 * Self.lambda * u * X * (T + A + X * C) * invN.squareRoot()
        bound += Self.statisticsError * (2 * X * C + C + X * A)
        let dxBound = r * bound + 0x1p-148 * T
        // Also rejects NaN: any NaN or infinite input makes a, c or T NaN or infinite.
        if dxBound <= Self.tolerance * max(1, r * T) { return true }
        exactRow(x, dy, dx, p, n)
        return false
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

/// The two element-wise passes of the backward row, SIMD16<Float> over raw
/// pointers with scalar tails that compute exactly what the vector body does.
///
/// Running maxima use `replace(with:where: v .> m)`, which compiles to minps/maxps;
/// `pointwiseMax` compiles to a per-lane scalar loop (it orders NaN) and made the
/// whole pass 50x slower. NaN lanes are skipped, which is safe here: any NaN input
/// also makes the row's a or c NaN, and the row check rejects that.
enum BackwardSIMD {
    typealias V = SIMD16<Float>
    static let width = 16

    /// x̂ = ((x - meanHi) - meanLo)·rstd into `xhat` (which may be `x`), p = dy·x̂
    /// into `p`; returns the smallest and largest x.
    @inline(__always)
    static func normalize(
        _ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
        _ xhat: UnsafeMutablePointer<Float>, _ p: UnsafeMutablePointer<Float>, _ n: Int,
        meanHi: Float, meanLo: Float, rstd: Float
    ) -> (min: Float, max: Float) {
        let hv = V(repeating: meanHi), lv = V(repeating: meanLo), rv = V(repeating: rstd)
        var lo = V(repeating: meanHi), hi = V(repeating: meanHi)
        var i = 0
        while i &+ width <= n {
            let xv = SIMDKernels.load(x + i)
            let v = ((xv - hv) - lv) * rv
            SIMDKernels.store(v, xhat + i)
            SIMDKernels.store(v * SIMDKernels.load(dy + i), p + i)
            lo.replace(with: xv, where: xv .< lo)
            hi.replace(with: xv, where: xv .> hi)
            i &+= width
        }
        var mn = lo.min(), mx = hi.max()
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

    /// t = (dy·w - a) - x̂·c;  dx = rstd·t  (or dx += rstd·t). Returns max|t|.
    @inline(__always)
    static func combine(
        _ dy: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ xhat: UnsafePointer<Float>,
        _ dx: UnsafeMutablePointer<Float>, _ n: Int, a: Float, c: Float, rstd: Float, accumulate: Bool
    ) -> Float {
        if accumulate {
            return combine(dy, w, xhat, dx, n, a: a, c: c, rstd: rstd, Accumulate.self)
        }
        return combine(dy, w, xhat, dx, n, a: a, c: c, rstd: rstd, Overwrite.self)
    }

    /// |v|, by clearing the sign bits (andps).
    @inline(__always)
    static func magnitude(_ v: V) -> V {
        unsafeBitCast(unsafeBitCast(v, to: SIMD16<UInt32>.self) & 0x7fff_ffff, to: V.self)
    }

    protocol Store { static func store(_ v: V, _ p: UnsafeMutablePointer<Float>); static func store(_ v: Float, _ p: UnsafeMutablePointer<Float>) }
    enum Overwrite: Store {
        @inline(__always) static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) { SIMDKernels.store(v, p) }
        @inline(__always) static func store(_ v: Float, _ p: UnsafeMutablePointer<Float>) { p.pointee = v }
    }
    enum Accumulate: Store {
        @inline(__always) static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) {
            SIMDKernels.store(SIMDKernels.load(p) + v, p)
        }
        @inline(__always) static func store(_ v: Float, _ p: UnsafeMutablePointer<Float>) { p.pointee += v }
    }

    @inline(__always)
    static func combine<S: Store>(
        _ dy: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ xhat: UnsafePointer<Float>,
        _ dx: UnsafeMutablePointer<Float>, _ n: Int, a: Float, c: Float, rstd: Float, _: S.Type
    ) -> Float {
        let av = V(repeating: a), cv = V(repeating: c), rv = V(repeating: rstd)
        var tm = V()
        var i = 0
        while i &+ width <= n {
            let g = SIMDKernels.load(dy + i) * SIMDKernels.load(w + i)
            let t = (g - av) - SIMDKernels.load(xhat + i) * cv
            S.store(t * rv, dx + i)
            let m = magnitude(t)
            tm.replace(with: m, where: m .> tm)
            i &+= width
        }
        var tMax = tm.max()
        while i < n {
            let t = (dy[i] * w[i] - a) - xhat[i] * c
            S.store(t * rstd, dx + i)
            tMax = Swift.max(tMax, abs(t))
            i &+= 1
        }
        return tMax
    }
}
