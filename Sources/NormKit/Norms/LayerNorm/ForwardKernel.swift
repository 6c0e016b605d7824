// The LayerNorm forward kernel, one row at a time.
//
// For a row x of n floats, with weight w and bias b:
//
//     mean = Σx / n,  var = Σ(x - mean)² / n,  y = w ⊙ (x - mean) / sqrt(var + eps) + b
//
// Every row first tries the fast path (1 below) about a shift from a sample of the row:
// the mean, in Double, of 32 elements in four runs (docs/numerics.md, "The shift").
// It costs no read of the row, and any finite shift is correct: the certificate holds
// for every shift, and a poor one only makes it refuse. When it refuses, the row starts
// again with s = Float(sdot(x, 1) / n): OpenBLAS's float sum, used only as a centre, so
// its rounding (which depends on the BLAS kernel's summation order) does not reach the
// result; a non-finite sum gives s = 0. The kernel layer's `forward_row` then takes, in
// this order, the first path that can certify the row (docs/numerics.md, "The algorithm"
// and "The fast path"):
//
// 1. Fast: Σ(x - s) and Σ(x - s)² in float lanes, 4 terms per lane per block, the blocks
//    added in Double, with a bound computed from the two sums (shift near the mean, no
//    overflow or underflow, finite values); then y = ((x - mean_hi) - mean_lo)·rstd·w + b
//    in float (t = fma(x, rstd, -mean·rstd) for a mean within 2σ where the level has
//    FMA: "The centred form"), with a bound of its error from max|y|, which the pass keeps,
//    and the call's max|w| and max|b| ("The affine certificate"), against 1e-6·max(1, max|y|).
// 2. Double moments: D1 = Σ(x - s) and D2 = Σ(x - s)² in Double (a second pass about
//    Float(mean) when s was more than a standard deviation off), the same float output,
//    certified again.
// 3. Double affine: y computed in Double and rounded once (a bias cancelling w·x̂).
//
// A row holding NaN or ±infinity comes out all NaN. A constant row takes path 2, whose
// second shift is its value, so x - mean is exactly 0 and y is exactly b.

import CNormKernels

/// The parameters a forward pass shares across rows.
struct ForwardParameters {
    var dim: Int
    var eps: Double
    /// `dim` weights (all ones for a layer without affine weights).
    var weight: UnsafePointer<Float>
    /// `dim` biases (all zeros for a layer without bias).
    var bias: UnsafePointer<Float>
    /// At least `min(dim, BLAS.maxChunk)` ones.
    var ones: UnsafePointer<Float>
    /// The kernel layer's LayerNorm functions at the level in force for this call.
    var kernels: nk_layernorm_kernels
    /// max |weight[i]| and max |bias[i]| (NaN when one is NaN), for the output certificate.
    var weightMax: Float
    var biasMax: Float
    /// Whether `run` writes y through non-temporal stores when y is not x
    /// (``StreamingStores``; the same values either way).
    var streamsOutput = false
    /// Whether a fused add's four arrays outgrow the cache (``StreamingStores/outgrowsCache(rows:length:streams:)``):
    /// then ``ForwardKernel/runAddPipelined`` keeps the pipelined driver for short rows too
    /// (the same bits either way; docs/performance.md, "Short rows in batches").
    var addFromMemory = false

    /// The largest |v[i]| of `count` values; NaN when one is NaN (the certificate then
    /// refuses every row, which the Double affine handles).
    static func largestMagnitude(_ v: UnsafePointer<Float>, _ count: Int) -> Float {
        var m: Float = 0
        var nan = false
        for i in 0 ..< count {
            let a = abs(v[i])
            nan = nan || a.isNaN
            m = a > m ? a : m
        }
        return nan ? .nan : m
    }

    /// ``largestMagnitude(_:_:)`` of a tensor's scalars (0 for an empty one).
    static func largestMagnitude(of t: Tensor) -> Float {
        t.withUnsafeBufferPointer { p in p.baseAddress.map { largestMagnitude($0, p.count) } ?? 0 }
    }
}

enum ForwardKernel {
    /// Normalises rows `rows` of `x` into `y` (which is `x` or does not overlap it), and
    /// writes each row's statistics into `mean`/`rstd` when they are given. A row's bits
    /// depend on that row (and the parameters) alone. With `p.streamsOutput` and y not x,
    /// y is written by non-temporal stores, fenced before returning.
    static func run(
        x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, rows: Range<Int>,
        parameters p: ForwardParameters,
        mean: UnsafeMutablePointer<Double>? = nil, rstd: UnsafeMutablePointer<Double>? = nil
    ) {
        let n = p.dim
        let inPlace = x == UnsafePointer(y)
        if !inPlace && !p.streamsOutput && rows.count > 1 {
            runPipelined(x: x, y: y, rows: rows, parameters: p, mean: mean, rstd: rstd)
            return
        }
        let stream = p.streamsOutput && !inPlace
        let sampled = stream ? p.kernels.forward_row_sampled_stream : p.kernels.forward_row_sampled
        for row in rows {
            let offset = row &* n
            let s = normalizeRow(x + offset, y + offset, p, sampled: sampled)
            mean?[row] = s.mean
            rstd?[row] = s.rstd
        }
        if stream { nk_stream_fence() }
    }

    /// Rows per call of `forward_rows_sampled`: the refused rows' indices fit on the stack.
    static let pipelinedRows = 128

    /// Runs a pipelined kernel over `rows` in chunks of ``pipelinedRows`` (their refused
    /// rows' indices fit on the stack): `kernel(start, count, refused)` takes rows
    /// `start ..< start + count` and returns how many it refused, their indices within the
    /// chunk in `refused`, in increasing order; `fallback(row, out)` then takes each refused
    /// row, with `out` two Doubles for its statistics. RMSKernel's pipelined forms use it too.
    @inline(__always)
    static func inPipelinedChunks(
        _ rows: Range<Int>, kernel: (_ start: Int, _ count: Int, _ refused: UnsafeMutablePointer<Int>) -> Int,
        fallback: (_ row: Int, _ out: UnsafeMutablePointer<Double>) -> Void
    ) {
        withUnsafeTemporaryAllocation(of: Int.self, capacity: pipelinedRows) { refused in
            var stats = (Double.nan, Double.nan)
            withUnsafeMutableBytes(of: &stats) { raw in
                let out = raw.baseAddress!.assumingMemoryBound(to: Double.self)
                var start = rows.lowerBound
                while start < rows.upperBound {
                    ProcessExit.checkpoint()
                    let count = min(pipelinedRows, rows.upperBound &- start)
                    let refusedCount = kernel(start, count, refused.baseAddress!)
                    for k in 0 ..< refusedCount { fallback(start &+ refused[k], out) }
                    start &+= count
                }
            }
        }
    }

    /// `run` for y not x and not streamed: `forward_rows_sampled` (each row's output pass
    /// interleaved with the next row's moments; the same bits as `forward_row_sampled` row
    /// by row) over chunks of rows, then the rows it refused as ``normalizeRow`` takes them.
    static func runPipelined(
        x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, rows: Range<Int>, parameters p: ForwardParameters,
        mean: UnsafeMutablePointer<Double>?, rstd: UnsafeMutablePointer<Double>?
    ) {
        let n = p.dim
        inPipelinedChunks(rows) { start, count, refused in
            let o = start &* n
            return p.kernels.forward_rows_sampled(
                x + o, y + o, count, n, p.eps, p.weight, p.bias, p.weightMax, p.biasMax,
                mean.map { $0 + start }, rstd.map { $0 + start }, refused)
        } fallback: { row, out in
            refusedRow(x + row &* n, y + row &* n, p, out)
            mean?[row] = out[0]
            rstd?[row] = out[1]
        }
    }

    /// The fused residual add over rows `rows`: `sum = x + residual` (one float addition
    /// per element) and `y = norm(sum)`, by `add_forward_rows_sampled` (the add made as
    /// the moments read each vector; every row's sum written, refused or not; for a call
    /// from memory, `p.addFromMemory`, `add_forward_rows_pipelined`, which never batches),
    /// then the rows it refused as ``normalizeRow`` takes them, from the sum. Each row's
    /// bits are ``run``'s on the sum. `y` is not `sum` and overlaps neither `residual`
    /// nor `sum`; `sum` may be `residual` or `x`, and `y` may be `x` when `sum` is not.
    static func runAddPipelined(
        x: UnsafePointer<Float>, residual: UnsafePointer<Float>, sum: UnsafeMutablePointer<Float>,
        y: UnsafeMutablePointer<Float>, rows: Range<Int>, parameters p: ForwardParameters,
        mean: UnsafeMutablePointer<Double>?, rstd: UnsafeMutablePointer<Double>?
    ) {
        let n = p.dim
        let kernel = p.addFromMemory ? p.kernels.add_forward_rows_pipelined : p.kernels.add_forward_rows_sampled
        inPipelinedChunks(rows) { start, count, refused in
            let o = start &* n
            return kernel(
                x + o, residual + o, sum + o, y + o, count, n, p.eps, p.weight, p.bias, p.weightMax, p.biasMax,
                mean.map { $0 + start }, rstd.map { $0 + start }, refused)
        } fallback: { row, out in
            refusedRow(sum + row &* n, y + row &* n, p, out)
            mean?[row] = out[0]
            rstd?[row] = out[1]
        }
    }

    /// Normalises rows `rows` of 16-bit elements (`format`: NK_ELEM_BF16 or
    /// NK_ELEM_F16) of `x` into `y` (which may be `x`): each row first through the
    /// sampled fast path converting in registers (`forward_row_sampled_half`, or for two
    /// or more rows out of place `forward_rows_sampled_half`, pipelined); a row it
    /// refuses is widened into `scratch` (two rows of floats), normalised from the sdot
    /// shift by `forward_row` as the float form would, and narrowed. Either way the bits
    /// are those of ``normalizeRow`` on the widened row, rounded once to the format.
    static func runHalf(
        x: UnsafePointer<UInt16>, y: UnsafeMutablePointer<UInt16>, rows: Range<Int>, format: Int32,
        parameters p: ForwardParameters, scratch: UnsafeMutablePointer<Float>, conversions: nk_half_format_kernels
    ) {
        let n = p.dim
        var stats = (Double.nan, Double.nan)
        withUnsafeMutableBytes(of: &stats) { raw in
            let out = raw.baseAddress!.assumingMemoryBound(to: Double.self)
            func fallback(_ row: Int) {
                refusedHalfRow(x + row &* n, y + row &* n, p, scratch: scratch, conversions: conversions, out)
            }
            if x != UnsafePointer(y) && rows.count > 1 {
                inPipelinedChunks(rows) { start, count, refused in
                    p.kernels.forward_rows_sampled_half(
                        x + start &* n, y + start &* n, count, n, format, p.eps, p.weight, p.bias, p.weightMax,
                        p.biasMax, nil, nil, refused)
                } fallback: { row, _ in
                    fallback(row)
                }
                return
            }
            for row in rows {
                ProcessExit.checkpoint()
                let xr = x + row &* n, yr = y + row &* n
                if p.kernels.forward_row_sampled_half(xr, yr, n, format, p.eps, p.weight, p.bias, p.weightMax, p.biasMax,
                                                     out) != 0 {
                    fallback(row)
                }
            }
        }
    }

    /// A 16-bit row the half kernels refused: widened into `scratch` (two rows of floats),
    /// normalised as ``refusedRow`` does a float row, narrowed into `y`.
    static func refusedHalfRow(
        _ x: UnsafePointer<UInt16>, _ y: UnsafeMutablePointer<UInt16>, _ p: ForwardParameters,
        scratch: UnsafeMutablePointer<Float>, conversions: nk_half_format_kernels, _ out: UnsafeMutablePointer<Double>
    ) {
        let n = p.dim
        let wide = scratch, result = scratch + n
        conversions.widen(x, wide, n)
        refusedRow(wide, result, p, out)
        conversions.narrow(result, y, n)
    }

    /// The fused add on 16-bit rows `rows` (`format`: NK_ELEM_BF16 or NK_ELEM_F16):
    /// `add_forward_rows_sampled_half` (sum = T(x + residual) made as the pipelined moments
    /// read each vector; every row's sum written), then the rows it refused as
    /// ``runHalf`` takes them, from the sum. Each row's bits are ``runHalf``'s on the sum.
    /// Aliasing as ``runAddPipelined``.
    static func runAddHalf(
        x: UnsafePointer<UInt16>, residual: UnsafePointer<UInt16>, sum: UnsafeMutablePointer<UInt16>,
        y: UnsafeMutablePointer<UInt16>, rows: Range<Int>, format: Int32, parameters p: ForwardParameters,
        scratch: UnsafeMutablePointer<Float>, conversions: nk_half_format_kernels
    ) {
        let n = p.dim
        inPipelinedChunks(rows) { start, count, refused in
            let o = start &* n
            return p.kernels.add_forward_rows_sampled_half(
                x + o, residual + o, sum + o, y + o, count, n, format, p.eps, p.weight, p.bias, p.weightMax,
                p.biasMax, nil, nil, refused)
        } fallback: { row, out in
            refusedHalfRow(sum + row &* n, y + row &* n, p, scratch: scratch, conversions: conversions, out)
        }
    }

    /// The sampled fast path's signature (`forward_row_sampled` or its `_stream` form).
    typealias SampledRow = @convention(c) (
        UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Double, UnsafePointer<Float>,
        UnsafePointer<Float>, Float, Float, UnsafeMutablePointer<Double>
    ) -> Int32

    /// One row: first the fast path about a sampled shift (`sampled`: the table's
    /// `forward_row_sampled` or its streaming form; step 0 of the file comment); when that
    /// cannot certify the row, the shift from `cblas_sdot` (step 1) and the kernel layer's
    /// `forward_row` (the paths).
    @inline(__always)
    static func normalizeRow(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ p: ForwardParameters, sampled: SampledRow
    ) -> RowStatistics {
        // The sampled path calls no BLAS, so the exit check is here, once per row, as
        // well as inside the BLAS wrapper (Support/ProcessExit.swift).
        ProcessExit.checkpoint()
        // A homogeneous tuple is laid out contiguously: stats[0], stats[1] of the C call.
        var stats = (Double.nan, Double.nan)
        withUnsafeMutableBytes(of: &stats) { raw in
            let out = raw.baseAddress!.assumingMemoryBound(to: Double.self)
            if sampled(x, y, p.dim, p.eps, p.weight, p.bias, p.weightMax, p.biasMax, out) != 0 {
                refusedRow(x, y, p, out)
            }
        }
        return RowStatistics(mean: stats.0, rstd: stats.1)
    }

    /// A row the sampled fast path refused: the shift from `cblas_sdot` (step 1 of the
    /// file comment) and the kernel layer's `forward_row` (the paths), statistics to `out`.
    @inline(__always)
    static func refusedRow(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ p: ForwardParameters,
        _ out: UnsafeMutablePointer<Double>
    ) {
        let shift = Float(BLAS.dotRepeating(p.dim, x, p.ones) / Double(p.dim))
        p.kernels.forward_row(x, y, p.dim, shift, p.eps, p.weight, p.bias, p.weightMax, p.biasMax, out)
    }
}
