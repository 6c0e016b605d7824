// The RMSNorm backward kernel, one block of rows at a time.
//
// For a row x of n floats with saved r = 1/sqrt(mean(x²) + eps) (Double, from
// forward), weight w, offset o and output gradient dy:
//
//     x̂ = x·r,   g = dy ⊙ (o + w),   c = Σ g·x  (so mean(g·x̂) = r·c/n)
//     dx = r·(g - x̂·mean(g·x̂)) = r·g - x·(r³·c/n)
//     dweight = Σ_rows dy ⊙ x̂
//
// Everything is computed in Double (the C kernels `backward_dot` and `backward_row`)
// from the float inputs and rounded once: products of two floats are exact in Double,
// the row sum c has relative error below n·2^-53, and the subtraction r·g - x·k,
// where dy is nearly parallel to x and the two terms cancel, loses digits only of a
// Double. No fallback path is needed.
//
// Determinism: rows are grouped into fixed blocks of `blockRows`; each block sums its
// rows' dweight terms in row order into its own partial, and the caller adds the
// partials in block order. Block boundaries do not depend on the thread count.

import CNormKernels

enum RMSBackwardKernel {
    /// Rows per block of partial weight gradients. Fixed: changing it changes the
    /// rounding of dweight (not of dx).
    static let blockRows = 64

    static func blockCount(rows: Int) -> Int { (rows &+ blockRows &- 1) / blockRows }
}

/// One backward call's inputs and outputs as raw pointers. `run(block:)` may run for
/// different blocks on several threads at once: each writes only its rows of `dx` and
/// its own partial.
struct RMSBackwardJob {
    var dim: Int
    var rows: Int
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
        let first = b &* RMSBackwardKernel.blockRows
        for row in first ..< min(rows, first &+ RMSBackwardKernel.blockRows) {
            let o = row &* n
            RMSBackwardKernel.row(x + o, dy + o, dx + o, n, rrms: rrms[row], weight, offset,
                                  accumulate: accumulate, partial: partial, kernels: kernels)
        }
    }
}

extension RMSBackwardKernel {
    /// One row (see the file comment), through the C kernels.
    @inline(__always)
    static func row(
        _ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ n: Int,
        rrms r: Double, _ w: UnsafePointer<Float>, _ offset: Float, accumulate: Bool,
        partial: UnsafeMutablePointer<Double>, kernels: nk_rmsnorm_kernels
    ) {
        let c = kernels.backward_dot(x, dy, w, offset, n)
        let k = r * r * r * c / Double(n)
        kernels.backward_row(x, dy, dx, n, w, offset, r, k, accumulate ? 1 : 0, partial)
    }
}
