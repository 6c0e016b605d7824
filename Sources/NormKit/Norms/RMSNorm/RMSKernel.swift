// The RMSNorm forward kernel, one row at a time.
//
// For a row x of n floats with weight w and offset o (1 for Gemma, else 0):
//
//     ms = Σx² / n,   r = 1/sqrt(ms + eps),   y = (x·r) ⊙ (o + w)
//
// Σx² comes from the C kernel (`row_sumsq`): summed in float blocks of 4 squares per
// lane, the blocks in Double, within (4u + nε) of Σx² when the sum certifies itself
// (finite, mean square >= 2^-90); else in Double, where a float's square is exact and
// no sum of them can overflow or underflow, so the row is exact to n·2^-53 whatever
// its magnitude (1e30·randn, 1e-25·randn, subnormals) and whatever BLAS library is
// linked (docs/numerics.md, "RMSNorm"). r is Double; the output pass runs in float.
//
// One special case: when ms > 2^240 (|x| near float's limit), r is below float's
// normal range. The row is then first scaled by 2^-64 (exact but for elements below
// 2^-62, far under float precision of the output) and r by 2^64.
//
// A NaN or infinity makes ms NaN or infinite: the row comes out all NaN (r = NaN).
//
// A row's bits depend on that row alone, so the output does not depend on how rows
// are split over threads. `y` may be the very same memory as `x`.

import CNormKernels

/// The parameters an RMSNorm pass shares across rows.
struct RMSParameters {
    var dim: Int
    var eps: Double
    /// `dim` weights.
    var weight: UnsafePointer<Float>
    /// Added to every weight: the scale is `offset + weight`.
    var offset: Float
    /// The kernels of the call's instruction set (read on the calling thread).
    var kernels: nk_rmsnorm_kernels
}

enum RMSKernel {
    /// Normalises rows `rows` of `x` into `y`, writing each row's `1/rms` into `rrms`
    /// when it is given.
    static func run(
        x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, rows: Range<Int>,
        parameters p: RMSParameters, rrms: UnsafeMutablePointer<Double>?
    ) {
        let n = p.dim
        for row in rows {
            let o = row &* n
            let r = finish(x + o, y + o, sumOfSquares: p.kernels.row_sumsq(x + o, n), p)
            rrms?[row] = r
        }
    }

    /// sum = input + residual (the float sum), then y = norm(sum), rows `rows`: the sum
    /// and its squares in one pass, giving the same bits as `run` on the sum. `sum` may
    /// be `residual`'s or `input`'s memory, and `y` any of the three.
    static func runAdding(
        input: UnsafePointer<Float>, residual: UnsafePointer<Float>, sum: UnsafeMutablePointer<Float>,
        y: UnsafeMutablePointer<Float>, rows: Range<Int>,
        parameters p: RMSParameters, rrms: UnsafeMutablePointer<Double>?
    ) {
        let n = p.dim
        for row in rows {
            let o = row &* n
            let squares = p.kernels.add_row_sumsq(input + o, residual + o, sum + o, n)
            let r = finish(UnsafePointer(sum + o), y + o, sumOfSquares: squares, p)
            rrms?[row] = r
        }
    }

    /// Writes the row from its sum of squares; returns its `1/sqrt(ms + eps)`.
    @inline(__always)
    static func finish(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, sumOfSquares: Double, _ p: RMSParameters
    ) -> Double {
        let n = p.dim
        let ms = sumOfSquares / Double(n)
        guard ms.isFinite else {
            y.update(repeating: .nan, count: n)
            return .nan
        }
        let r = 1 / (ms + p.eps).squareRoot()
        if ms <= 0x1p240 {
            p.kernels.scale(x, y, n, Float(r), p.weight, p.offset)
        } else {
            SIMDKernels.scale(x, y, n, 0x1p-64)
            p.kernels.scale(UnsafePointer(y), y, n, Float(r * 0x1p64), p.weight, p.offset)
        }
        return r
    }
}
