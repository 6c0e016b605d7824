// The RMSNorm forward kernel, one row at a time.
//
// For a row x of n floats with weight w and offset o (1 for Gemma, else 0):
//
//     ms = Σx² / n,   r = 1/sqrt(ms + eps),   y = (x·r) ⊙ (o + w)
//
// Σx² first comes from the C kernel's float pass (`row_sumsq_f`): squares and sums in
// float within blocks of 4 terms per lane, the block partials in Double. Its terms are
// all nonnegative, so no cancellation can hurt it: it is within about 4·2^-24 of Σx²
// on any row where no square overflowed and float underflow cannot matter, and the
// certificate below checks exactly that, from the sum itself (docs/numerics.md,
// "RMSNorm", "The float sum of squares"). A refused row (an overflowed square, a sum
// under n·2^-120, NaN or infinity) takes the Double sum (`row_sumsq`): a float's
// square is exact in Double and no sum of them can overflow or underflow it, so that
// pass is exact to n·2^-53 on every finite row, whatever its magnitude. Neither is
// `cblas_sdot` (the section says why). r is Double; the output pass runs in float.
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
    /// Whether blocks of rows go through the pipelined kernels (``RMSKernel/pipelines(rows:length:)``
    /// of the whole call); the same bits either way.
    var pipelines = false
}

enum RMSKernel {
    /// Whether a call over `rows` rows of `length` elements uses the pipelined kernels
    /// (`forward_rows`, `add_forward_rows`, `forward_rows_half`: each row's sum of squares
    /// beside the row before's output pass): only when its input and output fit in about
    /// the last-level cache (``StreamingStores/outgrowsCache(rows:length:)`` says no).
    /// From memory, reads of one row interleaved with stores of the row before lost to the
    /// two passes one after the other (docs/performance.md, "RMSNorm rows pipelined").
    static func pipelines(rows: Int, length: Int) -> Bool {
        rows > 1 && !StreamingStores.outgrowsCache(rows: rows, length: length)
    }

    /// Normalises rows `rows` of `x` into `y`, writing each row's `1/rms` into `rrms`
    /// when it is given.
    static func run(
        x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, rows: Range<Int>,
        parameters p: RMSParameters, rrms: UnsafeMutablePointer<Double>?
    ) {
        let n = p.dim
        func rowStep(_ row: Int) {
            let o = row &* n
            normalizeRow(x + o, y + o, floatSum: p.kernels.row_sumsq_f(x + o, n), p, keeping: rrms.map { $0 + row })
        }
        if p.pipelines && rows.count > 1 {
            // The pipelined kernel (each row's sum beside the row before's output pass; a
            // certified row's kept 1/rms from its Double sum, as `savedReciprocal`), then the
            // rows it refused by the row step: the same bits as the loop.
            ForwardKernel.inPipelinedChunks(rows) { start, count, refused in
                let o = start &* n
                return p.kernels.forward_rows(x + o, y + o, count, n, p.eps, p.weight, p.offset,
                                              rrms.map { $0 + start }, refused)
            } fallback: { row, _ in
                rowStep(row)
            }
            return
        }
        for row in rows { rowStep(row) }
    }

    /// Normalises rows `rows` of 16-bit elements (`format`: NK_ELEM_BF16 or
    /// NK_ELEM_F16) of `x` into `y` (which may be `x`), converting in registers
    /// (`forward_row_half`); a row whose float sum the certificate refuses is widened into
    /// `scratch` (two rows of floats), normalised by ``normalizeRow`` (the counted Double
    /// sum) and narrowed. Either way the bits are the float row's, rounded once.
    static func runHalf(
        x: UnsafePointer<UInt16>, y: UnsafeMutablePointer<UInt16>, rows: Range<Int>, format: Int32,
        parameters p: RMSParameters, scratch: UnsafeMutablePointer<Float>, conversions: nk_half_format_kernels
    ) {
        let n = p.dim
        func fallback(_ row: Int) {
            let xr = x + row &* n, yr = y + row &* n
            conversions.widen(xr, scratch, n)
            normalizeRow(UnsafePointer(scratch), scratch + n, floatSum: p.kernels.row_sumsq_f(scratch, n), p,
                         keeping: nil)
            conversions.narrow(scratch + n, yr, n)
        }
        if p.pipelines && rows.count > 1 {
            ForwardKernel.inPipelinedChunks(rows) { start, count, refused in
                p.kernels.forward_rows_half(
                    x + start &* n, y + start &* n, count, n, format, p.eps, p.weight, p.offset, refused)
            } fallback: { row, _ in
                fallback(row)
            }
            return
        }
        for row in rows {
            let xr = x + row &* n, yr = y + row &* n
            if p.kernels.forward_row_half(xr, yr, n, format, p.eps, p.weight, p.offset) != 0 { fallback(row) }
        }
    }

    /// sum = input + residual (the float sum), then y = norm(sum), rows `rows`: the sum
    /// and its squares in one pass, giving the same bits as `run` on the sum (the same
    /// float pass, certificate and Double fallback on the same float values). `sum` may
    /// be `residual`'s or `input`'s memory, and `y` any of the three.
    static func runAdding(
        input: UnsafePointer<Float>, residual: UnsafePointer<Float>, sum: UnsafeMutablePointer<Float>,
        y: UnsafeMutablePointer<Float>, rows: Range<Int>,
        parameters p: RMSParameters, rrms: UnsafeMutablePointer<Double>?
    ) {
        let n = p.dim
        if p.pipelines && rows.count > 1 {
            // Pipelined as `run`; every row's sum is written, and a refused row is taken
            // from it as below (row_sumsq_f of the stored sum is add_row_sumsq_f's value).
            ForwardKernel.inPipelinedChunks(rows) { start, count, refused in
                let o = start &* n
                return p.kernels.add_forward_rows(
                    input + o, residual + o, sum + o, y + o, count, n, p.eps, p.weight, p.offset,
                    rrms.map { $0 + start }, refused)
            } fallback: { row, _ in
                let o = row &* n
                normalizeRow(UnsafePointer(sum + o), y + o, floatSum: p.kernels.row_sumsq_f(sum + o, n), p,
                             keeping: rrms.map { $0 + row })
            }
            return
        }
        for row in rows {
            let o = row &* n
            let squares = p.kernels.add_row_sumsq_f(input + o, residual + o, sum + o, n)
            normalizeRow(UnsafePointer(sum + o), y + o, floatSum: squares, p, keeping: rrms.map { $0 + row })
        }
    }

    /// Writes row `x` into `y` from its float sum of squares when `certified`, else from
    /// the (counted) Double sum, and stores the row's `1/rms` at `keep` when given: the
    /// Double sum's, also for a certified row (`savedReciprocal`), taken before `y`
    /// (which may be `x`'s memory) is written.
    @inline(__always)
    static func normalizeRow(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, floatSum: Double, _ p: RMSParameters,
        keeping keep: UnsafeMutablePointer<Double>?
    ) {
        if certified(floatSum, p.dim) {
            if let keep { keep.pointee = savedReciprocal(x, p) }
            _ = finish(x, y, sumOfSquares: floatSum, p)
        } else {
            let r = finish(x, y, sumOfSquares: refused(p.kernels.row_sumsq(x, p.dim)), p)
            keep?.pointee = r
        }
    }

    /// Whether the float pass's sum of squares is certified (`nk_rms_sum_certified`:
    /// finite, and at least n·2^-120; the half row kernel checks the same definition).
    @inline(__always)
    static func certified(_ squares: Double, _ n: Int) -> Bool {
        nk_rms_sum_certified(squares, n) != 0
    }

    /// Counts a row refused by `certified` (bench reports the share) and passes its
    /// Double sum through.
    @inline(never)
    static func refused(_ squares: Double) -> Double {
        nk_ln_count_path(NK_RMS_DOUBLE_SUMSQ)
        return squares
    }

    /// The `1/rms` kept for the backward of a row whose output came from the float sum:
    /// from the Double sum instead (one more pass over the row, in L1; training only).
    /// The backward rebuilds Σx² from it, and its eps term needs Σx² to Double
    /// precision: at dim 1 that term is eps·r² of the gradient, 1e-16 for x = 3e5, far
    /// under the float sum's 4u (docs/numerics.md, "RMSNorm", "Backward").
    @inline(never)
    static func savedReciprocal(_ x: UnsafePointer<Float>, _ p: RMSParameters) -> Double {
        let ms = p.kernels.row_sumsq(x, p.dim) / Double(p.dim)
        // A certified row's ms is finite and at most 2^128 in both sums.
        return 1 / (ms + p.eps).squareRoot()
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
