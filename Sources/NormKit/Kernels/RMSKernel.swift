// The RMSNorm forward kernel, one row at a time.
//
// For a row x of n floats with weight w and offset o (1 for Gemma, else 0):
//
//     ms = Σx² / n,   r = 1/sqrt(ms + eps),   y = (x·r) ⊙ (o + w)
//
// Two paths, chosen per row from the row's own sum (docs/numerics.md, "RMSNorm"):
//
// * Fast path: S = sdot(x, x) (blocked for long rows, `BLAS.dot`), r in Double, then
//   one element-wise pass. Taken when S is finite (no square overflowed float) and
//   S/n >= 2^-96 (squares that fell into float's subnormal range, each off by at most
//   2^-150, are then below 2^-54 of the sum). The sum has only positive terms, so its
//   relative error is that of the summation order, not of any cancellation.
// * Careful path, for every other row (|x| above ~1e19 or below ~1e-19 everywhere,
//   zeros, NaN or infinity): scale the row by a power of two so that its largest
//   magnitude is in [1, 4) (exact: only elements below 2^-126 of the largest can lose
//   digits, and they are below float precision of the output), take sdot of the
//   scaled row, and fold the power of two into r in Double.
//
// A row's path and bits depend on that row alone, so the output does not depend on
// how rows are grouped or split over threads. `y` may be the same memory as `x` (each
// element is read before it is written, at the same index); it may not overlap it
// otherwise.

/// The parameters an RMSNorm pass shares across rows.
struct RMSParameters {
    var dim: Int
    var eps: Double
    /// `dim` weights.
    var weight: UnsafePointer<Float>
    /// Added to every weight: the scale is `offset + weight`.
    var offset: Float
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
            let r = normalizeRow(x + row &* n, y + row &* n, p)
            rrms?[row] = r
        }
    }

    /// Adds `input` into `residual` (h = residual + input, the float sum), then writes
    /// the norm of h into `y`; rows `rows`. `y` and `input` may each be `residual`'s memory.
    static func runAdding(
        input: UnsafePointer<Float>, residual: UnsafePointer<Float>, sum: UnsafeMutablePointer<Float>,
        y: UnsafeMutablePointer<Float>, rows: Range<Int>,
        parameters p: RMSParameters, rrms: UnsafeMutablePointer<Double>?
    ) {
        let n = p.dim
        for row in rows {
            let o = row &* n
            ElementwiseKernels.add(input + o, residual + o, sum + o, n)
            let r = normalizeRow(UnsafePointer(sum + o), y + o, p)
            rrms?[row] = r
        }
    }

    /// One row; returns its `1/sqrt(ms + eps)` (NaN for a row with NaN or infinity).
    @inline(__always)
    static func normalizeRow(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ p: RMSParameters) -> Double {
        let ms = BLAS.dot(p.dim, x, x) / Double(p.dim)
        guard ms.isFinite && ms >= 0x1p-96 else { return carefulRow(x, y, p) }
        let r = 1 / (ms + p.eps).squareRoot()
        ElementwiseKernels.scaleWeighted(x, y, p.dim, Float(r), p.weight, p.offset)
        return r
    }

    /// The careful path (see the file comment).
    @inline(never)
    static func carefulRow(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ p: RMSParameters) -> Double {
        let n = p.dim
        let range = SIMDKernels.range(x, n)
        guard range.finite else {
            y.update(repeating: .nan, count: n)
            return .nan
        }
        let amax = max(abs(range.min), abs(range.max))
        if amax == 0 {
            // ms = 0: r = 1/sqrt(eps), y = 0·(o + w) (NaN where the weight is not finite).
            let r = 1 / p.eps.squareRoot()
            ElementwiseKernels.scaleWeighted(x, y, n, Float(r), p.weight, p.offset)
            return r
        }
        // z = x·2^k with max|z| in [1, 4) (k clamped to float's normal exponents: a
        // subnormal row ends up in [2^-23, 4), still far from underflowing when squared).
        let k = min(max(-Int(amax.exponent), -126), 126)
        SIMDKernels.scale(x, y, n, Float(sign: .plus, exponent: k, significand: 1))
        let msz = BLAS.dot(n, UnsafePointer(y), UnsafePointer(y)) / Double(n)
        // ms(x) = msz·2^-2k; y = x·r·(o + w) = z·(r·2^-k)·(o + w), and r·2^-k =
        // 1/sqrt(msz + eps·2^2k): every quantity stays inside Double's range.
        let twoK = Double(sign: .plus, exponent: 2 &* k, significand: 1)
        let s = 1 / (msz + p.eps * twoK).squareRoot()
        ElementwiseKernels.scaleWeighted(UnsafePointer(y), y, n, Float(s), p.weight, p.offset)
        return s * Double(sign: .plus, exponent: k, significand: 1)
    }
}
