// The RMSNorm backward kernel, one block of rows at a time.
//
// For a row x of n floats with saved r = 1/sqrt(mean(x²) + eps) (Double, from
// forward), weight w, offset o and output gradient dy:
//
//     x̂ = x·r,   g = dy ⊙ (o + w),   c = Σ g·x  (so mean(g·x̂) = r·c/n)
//     dx = r·(g - x̂·mean(g·x̂)) = r·g - x·k,   k = r³·c/n
//     dweight = Σ_rows dy ⊙ x̂
//
// Three paths, each ending in a check (docs/numerics.md, "RMSNorm", "Backward"):
// * float (`backward_sums_f`, `backward_grad_f`): c, Σ|g·x|, max|g| and max|x| from
//   float products summed in float blocks of 4 vectors per lane, then
//   dx = (dy·(o + w))·r - x·k in float and the row's dweight term; `floatBound`.
// * Double, for a row the float check refuses (`backward_sums`, `backward_grad`): the
//   same in Double, rounded once; `bound`.
// * exact, for a row neither can certify: where dy is nearly parallel to x the two
//   terms cancel, and what is left may be only the eps term (at n = 1 it always is:
//   dx = g·eps·r³), which a Double subtraction loses. `exactRMSRowGradient` recomputes
//   it (the projection in double-double, the eps term apart), with r from x.
// The dweight term is added once, by the first pass that ran (it does not depend on
// the cancellation the checks are about).

// Statistics: a row whose saved r is NaN, infinite, zero or negative gets a NaN input
// gradient and makes dweight NaN, as LayerNorm's contract has it for its statistics.
//
// Determinism: rows are grouped into fixed blocks of `blockRows`; each block sums its
// rows' dweight terms in row order into its own partial, and the caller adds the
// partials in block order. Block boundaries do not depend on the thread count, and a
// row's path depends on the row alone.

import CNormKernels

enum RMSBackwardKernel {
    /// Rows per block of partial weight gradients. Fixed: changing it changes the
    /// rounding of dweight (not of dx).
    static let blockRows = BackwardRows.blockRows

    static func blockCount(rows: Int) -> Int { (rows &+ blockRows &- 1) / blockRows }

    /// What a row may be off by, relative to max(1, max|dx|), before it is recomputed
    /// exactly: LayerNorm's `BackwardBounds.tolerance`.
    static let tolerance = 4e-6

    /// The check's bound before the row pass (docs/numerics.md, "RMSNorm", "Backward"),
    /// from r, k, Σ|g·x| (`P`), max|g| (`G`), max|x| (`X`), in units of dx: the roundings
    /// of g, c, k and r·g - x·k, and the saved r's own error ((n + 3)·2^-53 relative,
    /// amplified by 2|x·k|). The part that scales with max|dx| is `perDx`.
    @inline(__always)
    static func bound(r: Double, k: Double, absSum P: Double, gMax G: Double, xMax X: Double, n: Int)
        -> (fixed: Double, perDx: Double) {
        let e = 0x1p-53, nd = Double(n)
        let K = abs(k)
        let fixed = e * (3 * r * G + (2 * nd + 11) * X * K + X * r * r * r * (nd + 3) * P / nd)
        return (fixed, e * (nd + 5))
    }

    /// The float fast path takes rows with r in this range: Float(r) and r³ stay normal.
    static let floatRange = 0x1p-40...0x1p40

    /// The float fast path's bound (docs/numerics.md, "RMSNorm", "Backward"): g and g·x
    /// rounded in float and summed in blocks of 4 float additions per lane (7u per term
    /// of c, with the Double additions), k and r rounded to float, the pass's three
    /// roundings (4u·r·|g| + 2u·|x·k| + u·|dx|), float underflow (absolute 2^-149 per
    /// rounding, scaled), and the saved r's own error as in `bound`; 1% for second order.
    @inline(__always)
    static func floatBound(r: Double, k: Double, absSum P: Double, gMax G: Double, xMax X: Double, n: Int)
        -> (fixed: Double, perDx: Double) {
        let u = 0x1p-24, e = 0x1p-53, nd = Double(n)
        let K = abs(k), r3 = r * r * r
        let fixed = u * (4 * r * G + 2 * X * K + 7 * X * r3 * P / nd) + X * r3 * 0x1p-148 * (1 + X)
            + (nd + 3) * e * 2 * X * K + 0x1p-147 * (1 + r)
        return (1.01 * fixed, 1.01 * (u + (nd + 3) * e))
    }

    /// Whether a row whose pass returned max|dx| = `vMax` is within the tolerance.
    /// False for NaN, and where dx overflowed float (there r itself may be what is
    /// wrong: a hand-made one; the exact fallback recomputes it).
    @inline(__always)
    static func accepts(_ b: (fixed: Double, perDx: Double), vMax V: Double) -> Bool {
        V <= Double(Float.greatestFiniteMagnitude) && b.fixed + b.perDx * V <= tolerance * max(1, V)
    }
}

/// One backward call's inputs and outputs as raw pointers. `run(block:)` may run for
/// different blocks on several threads at once: each writes only its rows of `dx` and
/// its own partial, and takes its scratch row from the running thread's
/// `ThreadScratch.rows`.
struct RMSBackwardJob {
    var dim: Int
    var rows: Int
    /// The layer's eps, for the exact fallback's recomputed r.
    var eps: Double
    var x: UnsafePointer<Float>
    var dy: UnsafePointer<Float>
    var dx: UnsafeMutablePointer<Float>
    /// Whether dx is added into (`dx += gradient`, in float) rather than overwritten.
    var accumulate: Bool
    var rrms: UnsafePointer<Double>
    var weight: UnsafePointer<Float>
    var offset: Float
    /// `blockCount × dim` partial sums of dy ⊙ x̂.
    var partials: UnsafeMutablePointer<Double>
    /// The kernels of the call's instruction set (read on the calling thread).
    var kernels: nk_rmsnorm_kernels

    func run(block b: Int) {
        let n = dim
        let partial = partials + b &* n
        partial.update(repeating: 0, count: n)
        // An accumulating call writes each row's gradient here first: a refused row
        // must find dx as it was.
        let scratch = accumulate
            ? ThreadScratch.rows.buffer(bytes: n &* MemoryLayout<Float>.stride).bindMemory(to: Float.self, capacity: n)
            : nil
        let first = b &* RMSBackwardKernel.blockRows
        for row in first ..< min(rows, first &+ RMSBackwardKernel.blockRows) {
            let o = row &* n
            self.row(x + o, dy + o, dx + o, rrms: rrms[row], scratch: scratch, partial: partial)
        }
    }

    /// One row (see the file comment).
    @inline(__always)
    func row(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
             rrms r: Double, scratch: UnsafeMutablePointer<Float>?, partial: UnsafeMutablePointer<Double>) {
        let n = dim
        guard r.isFinite && r > 0 else {
            // Not statistics forward can make (NaN for a row with NaN or infinity).
            for i in 0..<n {
                dx[i] = .nan
                partial[i] = .nan
            }
            return
        }
        let out = scratch ?? dx
        // The float fast path; a row it cannot certify takes the Double path (which has
        // added nothing yet), and one that cannot either the exact fallback.
        var partialDone = false
        if RMSBackwardKernel.floatRange.contains(r) {
            var s = (0.0, 0.0, 0.0, 0.0)
            withUnsafeMutableBytes(of: &s) { p in
                kernels.backward_sums_f(x, dy, weight, offset, n, p.baseAddress!.assumingMemoryBound(to: Double.self))
            }
            let k = r * r * r * s.0 / Double(n)
            let bound = RMSBackwardKernel.floatBound(r: r, k: k, absSum: s.1, gMax: s.2, xMax: s.3, n: n)
            if bound.fixed.isFinite && k.isFinite && abs(k) <= Double(Float.greatestFiniteMagnitude) {
                let vMax = kernels.backward_grad_f(x, dy, out, n, weight, offset, Float(r), Float(k), partial)
                partialDone = true
                if RMSBackwardKernel.accepts(bound, vMax: Double(vMax)) {
                    if let scratch { BLAS.axpy(n, 1, UnsafePointer(scratch), dx) }
                    return
                }
            }
        }
        var s = (0.0, 0.0, 0.0, 0.0)
        withUnsafeMutableBytes(of: &s) { p in
            kernels.backward_sums(x, dy, weight, offset, n, p.baseAddress!.assumingMemoryBound(to: Double.self))
        }
        let k = r * r * r * s.0 / Double(n)
        let bound = RMSBackwardKernel.bound(r: r, k: k, absSum: s.1, gMax: s.2, xMax: s.3, n: n)
        if bound.fixed.isFinite && k.isFinite {
            let vMax = kernels.backward_grad(x, dy, out, n, weight, offset, r, k, partialDone ? nil : partial)
            if !RMSBackwardKernel.accepts(bound, vMax: vMax) {
                exactRow(x, dy, out, partial: nil)
            }
        } else {
            exactRow(x, dy, out, partial: partialDone ? nil : partial)
        }
        if let scratch { BLAS.axpy(n, 1, UnsafePointer(scratch), dx) }
    }

    /// The exact fallback (`exactRMSRowGradient`): dx recomputed from x, dy and w, with
    /// r recomputed from x; adds the row's dweight term to `partial` when given (when
    /// the row pass has not).
    @inline(never)
    func exactRow(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                  partial: UnsafeMutablePointer<Double>?) {
        let w = weight, o = offset
        exactRMSRowGradient(count: dim, eps: eps, x: { Double(x[$0]) },
                            g: { DoubleDouble.gradient(dy[$0], w[$0], offset: o) }) { i, v, r in
            out[i] = Float(v)
            if let partial { partial[i] += (Double(dy[i]) * Double(x[i])) * r }
        }
    }
}
