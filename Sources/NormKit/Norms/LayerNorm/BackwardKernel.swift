// The LayerNorm backward kernel (after llm.c's layernorm_backward): the math and the
// plan. BackwardJob.swift runs it over blocks of rows, BackwardBounds.swift holds the
// row check, and the element-wise passes are in the kernel layer
// (Sources/CNormKernels/kernels/layernorm.h, `backward_*`).
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
// in Double from x, dy and w alone (`BackwardJob.exactRow`).
//
// * Fast path, for rows whose mean is within `fastMeanRatio` standard deviations of
//   zero (|μ|·r <= 16) and whose rstd is in [2^-30, 2^30]: random and real activations.
//   1. `backward_centre`: d = (x - μ_hi) - μ_lo (μ split into two floats, so d is exact
//      near the mean) and p = d·dy, max|d|, and in the same pass Σ dy·w and Σ p·w
//      (float products added per lane in float, as trees over blocks of 8 vectors and
//      chains of at most 4 for the rest, the block partials in Double), so
//      a = Σ dy·w / n and c = r·Σ p·w / n. Nothing is stored.
//   2. `backward_affine`: dx = fma(dy·w, r, fma(x, β, γ)), max|dx|, and the row's share of
//      the block's partial dweight and dbias: d·r·dy and dy. Three products and two
//      sums per element for dx, x read again (from cache) instead of a stored x̂. β·x
//      and γ cancel when |μ|·r is large, which is what the gate bounds. Two consecutive
//      fast rows of a block (not accumulating) share this pass (`backward_affine2`): row
//      1's step then row 2's at each vector, the partials kept in registers between them
//      instead of stored and reloaded; the bits of two passes, each partial read and
//      written once a vector instead of twice.
// * Careful path, for every other row (a mean far from zero against the spread, a
//   spread above ~1e9 or below ~1e-9, NaN): x̂ = ((x - μ_hi) - μ_lo)·r into a scratch
//   row (rows with a spread above ~1e30 first scaled by a power of two, so that x - μ
//   and r stay inside float's range), p = dy·x̂ and the two sums (`backward_normalize`),
//   then dx = r·((g - a) - x̂·c) from the stored x̂ (`backward_combine`): nothing
//   cancels but t itself.
//
// The check bounds the row's float rounding (and the saved statistics' error) from
// T = max|t|, |a|, |c| and max|x̂|. Where g - a - x̂·c cancels (dy nearly in the span
// of 1 and x̂, e.g. dy = y on a row of small spread) the bound fails and the row takes
// the Double fallback. Random and real gradients do not.
//
// Memory: the first pass of each path prefetches x and dy `prefetchDistance` floats
// ahead and the second the output rows ahead (the hardware prefetchers stop at 4 KB
// pages; docs/performance-history.md, "Backward"). An accumulating call writes the row's
// gradient to a scratch row and adds it into dx only once the row is accepted: a
// rejected row must find dx as it was.
//
// Determinism: rows are grouped into fixed blocks of `blockRows`; each block's
// partial sums are accumulated in row order inside the block, and the caller adds
// the partials in block order (in Double). Block boundaries do not depend on how
// blocks are spread over threads, and a row's path depends on its own statistics
// only, so the result is bitwise the same for every thread count (at each
// instruction-set level; the levels differ in vector width, hence in the order of
// the two in-pass sums).
//
// Rounding: the passes multiply and add with separate roundings (no fused
// multiply-add), as the check's bounds assume; the two sums are at least as accurate
// as the dsdot the bounds were written for.
//
// Allocation: none per call once a thread has made a call of the same size. The
// partial sums live in the calling thread's `ThreadScratch.call` block and each
// block's scratch rows in the running thread's `ThreadScratch.rows` block.

enum BackwardKernel {
    /// Rows per block of partial weight/bias gradients. Fixed: changing it changes
    /// the rounding of dweight and dbias (not of dx).
    static let blockRows = BackwardRows.blockRows

    /// The number of blocks for `rows` rows.
    static func blockCount(rows: Int) -> Int { (rows &+ blockRows &- 1) / blockRows }

    /// How far ahead (in floats) the passes prefetch: three rows of 768
    /// (docs/performance-history.md, "Backward", has what was measured).
    static let prefetchDistance = 2304

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
