// Running the backward kernel (BackwardKernel.swift has the math and the plan) over
// blocks of rows: per row, the fast or careful path's two kernel-layer passes, the
// check (BackwardBounds), the Double fallback, and the row's share of the partial
// weight and bias gradients.

import CNormKernels

/// One backward call's inputs, outputs and partial sums, as raw pointers.
///
/// `run(blocks:)` may be called for disjoint block ranges from several threads at
/// once: each block writes only its own rows of `dx`, its own slice of the partial
/// buffers and its own `fallbackRows` entry, and takes its scratch rows from the
/// running thread's `ThreadScratch.rows`. That is what makes it `@unchecked Sendable`.
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
    /// `blockCount` counts of rows that took the Double fallback.
    var fallbackRows: UnsafeMutablePointer<Int>
    /// The kernel layer's functions at the level chosen for this call.
    var kernels: nk_layernorm_kernels

    /// Processes every row of blocks `blocks`. Allocates nothing once this thread has
    /// run a block of this `dim` (its three scratch rows are `ThreadScratch.rows`).
    func run(blocks: Range<Int>) {
        let n = dim
        // Three rows, each starting on a 64-byte line.
        let stride = (n &+ 15) & ~15
        let scratch = ThreadScratch.rows.buffer(bytes: 3 &* stride &* MemoryLayout<Float>.stride)
            .bindMemory(to: Float.self, capacity: 3 &* stride)
        let xhat = scratch, p = scratch + stride, delta = scratch + 2 &* stride
        // Two fast rows in a row share one second pass (`fastRows`) when the call's x, dy
        // and dx stay in cache (from memory it was never clearly faster: docs/performance.md,
        // "Backward: two rows a second pass"), and dx is not accumulated into (a row's
        // gradient then goes through the scratch row). The bits are the same either way.
        let pairs = !accumulate && !StreamingStores.outgrowsCache(rows: rows, length: n, streams: 3)
        for b in blocks {
            let first = b &* BackwardKernel.blockRows
            let end = min(rows, first &+ BackwardKernel.blockRows)
            let pw = partialWeight.map { $0 + b &* n }
            let pb = partialBias.map { $0 + b &* n }
            pw?.update(repeating: 0, count: n)
            pb?.update(repeating: 0, count: n)
            var fallbacks = 0
            var row = first
            while row < end {
                if pairs && row &+ 1 < end && takesFastPath(row) && takesFastPath(row &+ 1) {
                    fallbacks &+= fastRows(row, p: p, pw: pw, pb: pb)
                    row &+= 2
                    continue
                }
                if self.row(row, xhat: xhat, p: p, delta: delta, pw: pw, pb: pb) { fallbacks &+= 1 }
                row &+= 1
            }
            fallbackRows[b] = fallbacks
        }
    }

    /// Writes row `row` of dx and adds the row's dweight and dbias terms to `pw` and
    /// `pb` (the fast path in its second pass, the others through `p`). Returns whether
    /// the row took the exact fallback.
    @inline(__always)
    func row(_ row: Int, xhat: UnsafeMutablePointer<Float>, p: UnsafeMutablePointer<Float>,
             delta: UnsafeMutablePointer<Float>, pw: UnsafeMutablePointer<Float>?,
             pb: UnsafeMutablePointer<Float>?) -> Bool {
        let n = dim
        let offset = row &* n
        let x = self.x + offset, dy = self.dy + offset, dx = self.dx + offset
        let mu = mean[row], r = rstd[row]
        let wantPartials = pw != nil || pb != nil
        guard mu.isFinite && r.isFinite && r > 0 else {
            // Forward saw NaN or infinity in this row: its output was NaN, so is its gradient.
            nanRow(dx, p, n)
            if wantPartials { kernels.backward_accumulate(pw, pb, p, dy, n, 1) }
            return false
        }
        // Prefetch this far ahead while the rest of the tensor lasts (the current
        // row, harmlessly, near the end).
        let ahead = offset &+ n &+ BackwardKernel.prefetchDistance <= rows &* n ? BackwardKernel.prefetchDistance : 0
        if takesFastPath(row) {
            // The second pass has added this row's partials, whether the row is kept or not:
            // they do not depend on the cancellation the check is about.
            if fastRow(x, dy, dx, delta, n, mean: mu, rstd: r, ahead: ahead, pw: pw, pb: pb) {
                if accumulate { BLAS.axpy(n, 1, delta, dx) }
                return false
            }
            exactRow(x, dy, dx, p, n)
            return true
        }
        let fellBack: Bool
        if carefulRow(x, dy, dx, xhat, p, delta, n, mean: mu, rstd: r, ahead: ahead) {
            if accumulate { BLAS.axpy(n, 1, delta, dx) }
            fellBack = false
        } else {
            exactRow(x, dy, dx, p, n)
            fellBack = true
        }
        if wantPartials { kernels.backward_accumulate(pw, pb, p, dy, n, 1) }
        return fellBack
    }

    /// Whether row `row` takes the fast path (finite statistics inside its gate).
    @inline(__always)
    func takesFastPath(_ row: Int) -> Bool {
        let mu = mean[row], r = rstd[row]
        return mu.isFinite && r.isFinite && r > 0 && BackwardBounds.fastRstdRange.contains(r)
            && abs(mu) * r <= BackwardBounds.fastMeanRatio
    }

    /// A fast row's first pass and what follows from it: the second pass's arguments
    /// (rstd, beta, gamma, mean_hi, mean_lo, s, as `backward_affine` takes them) and the
    /// check's a, c and max|d|.
    struct FastPlan {
        var q: (Float, Float, Float, Float, Float, Float)
        var a: Double, c: Double, dMax: Float
    }

    /// The fast path's first pass over a row (see BackwardKernel.swift): the two sums
    /// (`backward_centre`), then a = Σ dy·w / n, c = r·Σ p·w / n, β and γ.
    @inline(__always)
    func fastPlan(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ n: Int, mean mu: Double, rstd r: Double,
                  ahead: Int) -> FastPlan {
        let invN = 1 / Double(n)
        let mHi = Float(mu)
        let mLo = Float(mu - Double(mHi))
        var sums = (0.0, 0.0)
        let dMax = withUnsafeMutableBytes(of: &sums) { s in
            kernels.backward_centre(x, dy, weight, n, mHi, mLo, ahead, s.baseAddress!.assumingMemoryBound(to: Double.self))
        }
        let a = sums.0 * invN
        let c = r * (sums.1 * invN)
        let beta = -(r * r * c), gamma = r * (r * c * mu - a)
        return FastPlan(q: (Float(r), Float(beta), Float(gamma), mHi, mLo, Float(r)), a: a, c: c, dMax: dMax)
    }

    /// The fast path's check of a row whose second pass gave max|dx| = `eMax`.
    @inline(__always)
    func fastAccepts(_ plan: FastPlan, eMax: Float, mean mu: Double, rstd r: Double, n: Int) -> Bool {
        // max|x̂| from max|d|: d is x - μ up to 3u of itself (and 2u² of the mean).
        let u = BackwardBounds.u
        let M = abs(mu) * r
        let X = Double(plan.dMax) * r * (1 + 4 * u) + 2 * u * u * M
        return BackwardBounds.acceptsFast(a: plan.a, c: plan.c, tMax: Double(eMax) / r, xMax: X, meanRatio: M, r: r,
                                          n: n)
    }

    /// Rows `row` and `row + 1`, both on the fast path and not accumulating: each row's
    /// first pass (`fastPlan`), then both rows' dx and partials in one second pass
    /// (`backward_affine2`: the bits of `fastRow` on each, in row order), then each row's
    /// check; a refused row is recomputed by `exactRow` (its partials stay, as in
    /// `row`). Returns how many of the two took the fallback.
    @inline(__always)
    func fastRows(_ row: Int, p: UnsafeMutablePointer<Float>, pw: UnsafeMutablePointer<Float>?,
                  pb: UnsafeMutablePointer<Float>?) -> Int {
        let n = dim
        let offset = row &* n
        let x = self.x + offset, dy = self.dy + offset, dx = self.dx + offset
        let ahead = offset &+ 2 &* n &+ BackwardKernel.prefetchDistance <= rows &* n ? BackwardKernel.prefetchDistance : 0
        let plans = (fastPlan(x, dy, n, mean: mean[row], rstd: rstd[row], ahead: ahead),
                     fastPlan(x + n, dy + n, n, mean: mean[row &+ 1], rstd: rstd[row &+ 1], ahead: ahead))
        var q = (plans.0.q, plans.1.q)  // 12 floats, row 1's then row 2's
        var eMax = (Float(0), Float(0))
        withUnsafeBytes(of: &q) { qb in
            withUnsafeMutableBytes(of: &eMax) { eb in
                kernels.backward_affine2(dy, weight, x, dx, n, qb.baseAddress!.assumingMemoryBound(to: Float.self),
                                         pw, pb, UnsafePointer(dx + ahead), eb.baseAddress!.assumingMemoryBound(to: Float.self))
            }
        }
        var fellBack = 0
        for k in 0 ..< 2 {
            let (plan, e) = k == 0 ? (plans.0, eMax.0) : (plans.1, eMax.1)
            if !fastAccepts(plan, eMax: e, mean: mean[row &+ k], rstd: rstd[row &+ k], n: n) {
                exactRow(x + k &* n, dy + k &* n, dx + k &* n, p, n)
                fellBack &+= 1
            }
        }
        return fellBack
    }

    /// The fast path (see BackwardKernel.swift): the two sums, then
    /// dx = fma(dy·w, r, fma(x, β, γ)) into dx (into `delta` when accumulating) with the
    /// row's partials. Returns whether the check accepts the row.
    @inline(__always)
    func fastRow(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                 _ delta: UnsafeMutablePointer<Float>, _ n: Int, mean mu: Double, rstd r: Double, ahead: Int,
                 pw: UnsafeMutablePointer<Float>?, pb: UnsafeMutablePointer<Float>?) -> Bool {
        let plan = fastPlan(x, dy, n, mean: mu, rstd: r, ahead: ahead)
        let q = plan.q
        let eMax = kernels.backward_affine(dy, weight, x, accumulate ? delta : dx, n, q.0, q.1, q.2, q.3, q.4, q.5,
                                           pw, pb, UnsafePointer(dx + ahead))
        return fastAccepts(plan, eMax: eMax, mean: mu, rstd: r, n: n)
    }

    /// The careful path (see BackwardKernel.swift): x̂ into `xhat`, p = dy·x̂, then
    /// dx = r·((g - a) - x̂·c). Returns whether the check accepts the row.
    @inline(__always)
    func carefulRow(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                    _ xhat: UnsafeMutablePointer<Float>, _ p: UnsafeMutablePointer<Float>,
                    _ delta: UnsafeMutablePointer<Float>, _ n: Int,
                    mean mu: Double, rstd r: Double, ahead: Int) -> Bool {
        let invN = 1 / Double(n)
        // x̂ = (x·s - μ·s)·(r/s) with s a power of two: 1 unless r < 2^-100 (a spread
        // above ~1e30), where x - μ could overflow and r is near float's subnormals.
        // Then x·s (exact) goes to the scratch row first, and x̂ is computed in place.
        var source = x, s = 1.0, rs = r
        if r < 0x1p-100 {
            s = Double(sign: .plus, exponent: max(r.exponent, -149), significand: 1)
            rs = r / s
            kernels.scale(x, xhat, n, Float(s))
            source = UnsafePointer(xhat)
        }
        let ms = mu * s
        let mHi = Float(ms)
        let mLo = Float(ms - Double(mHi))
        var sums = (0.0, 0.0)
        var range: (Float, Float) = (0, 0)
        withUnsafeMutableBytes(of: &sums) { sp in
            withUnsafeMutableBytes(of: &range) { rp in
                kernels.backward_normalize(source, dy, weight, xhat, p, n, mHi, mLo, Float(rs), ahead,
                                           sp.baseAddress!.assumingMemoryBound(to: Double.self),
                                           rp.baseAddress!.assumingMemoryBound(to: Float.self))
            }
        }
        let a = sums.0 * invN
        let c = sums.1 * invN
        let tMax = kernels.backward_combine(
            dy, weight, xhat, accumulate ? delta : dx, n, Float(a), Float(c), Float(r), UnsafePointer(dx + ahead))

        // max|x̂| from the range of x (·s): exact up to the rounding of x̂ itself.
        let xMax = max(Double(range.1) - ms, ms - Double(range.0)) * rs
        return BackwardBounds.accepts(a: a, c: c, tMax: Double(tMax), xMax: xMax, r: r, scaledMean: ms,
                                      scaledRstd: rs, n: n)
    }

    /// The exact fallback (`exactLayerNormRowGradient`): statistics, x̂, the two sums
    /// and dx recomputed from x, dy and w alone, the projection in double-double and
    /// the eps term apart (docs/numerics.md, "Backward"); p rewritten from that x̂.
    @inline(never)
    func exactRow(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                  _ p: UnsafeMutablePointer<Float>, _ n: Int) {
        let w = weight, accumulate = self.accumulate
        exactLayerNormRowGradient(count: n, eps: eps, x: { Double(x[$0]) },
                                  g: { DoubleDouble.gradient(dy[$0], w[$0]) }) { i, v, xh in
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
