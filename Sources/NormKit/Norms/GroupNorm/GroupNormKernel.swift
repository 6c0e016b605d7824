// GroupNorm's row functions over (sample, group) rows: `channelsPerGroup` runs of
// `spatial` floats, channel c of the row scaled by weight[c] and shifted by bias[c].
//
// Forward: the statistics as LayerNorm's forward kernel takes them (docs/numerics.md,
// "Forward"): a shift from the float sum, then Σ(x - s) and Σ(x - s)² in Double by
// the LayerNorm family's `row_moments`, a second pass about the mean when the shift
// was more than a standard deviation off; then the GroupNorm family's `affine`, with
// the Double mean split into two floats. A group whose spread or mean is near the
// limits of float (variance outside 2^±200, |mean| > 2^100) is written from Double
// instead. A row holding NaN or infinity comes out all NaN with NaN statistics.
//
// Backward: everything in Double from the float inputs (the GroupNorm family's
// `backward_sums` and `backward_dx`), rounded once, as RMSNorm's is: no fallback path.

import CNormKernels

/// What GroupNorm's row functions read for one call.
struct GroupNormParameters {
    var groups: Int
    var channelsPerGroup: Int
    var spatial: Int
    var eps: Double
    /// `channels` weights and biases (ones and zeros for a layer without affine parameters).
    var weight: UnsafePointer<Float>
    var bias: UnsafePointer<Float>
    /// At least `min(length, BLAS.singleCallLimit)` ones, for the shift's float sum.
    var ones: UnsafePointer<Float>
    var layerNorm: nk_layernorm_kernels
    var groupNorm: nk_groupnorm_kernels
    var add: @convention(c) (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void
}

enum GroupNormKernel {
    /// Rows per backward block: about 32 Ki elements, so a few big groups still spread
    /// over threads. A function of the row length alone.
    static func rowsPerBlock(length: Int) -> Int {
        min(BackwardRows.blockRows, max(1, RowParallel.minElementsPerThread / max(length, 1)))
    }

    static func run(
        x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, rows: Range<Int>, _ p: GroupNormParameters,
        means: UnsafeMutablePointer<Double>?, rstds: UnsafeMutablePointer<Double>?
    ) {
        let n = p.channelsPerGroup &* p.spatial
        for row in rows {
            let o = row &* n
            let c0 = (row % p.groups) &* p.channelsPerGroup
            let s = normalizeRow(x + o, y + o, n, weight: p.weight + c0, bias: p.bias + c0, p)
            means?[row] = s.mean
            rstds?[row] = s.rstd
        }
    }

    static func normalizeRow(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int,
        weight w: UnsafePointer<Float>, bias b: UnsafePointer<Float>, _ p: GroupNormParameters
    ) -> RowStatistics {
        guard let (mean, rstd, variance) = statistics(x, n, p) else {
            y.update(repeating: .nan, count: n)
            return .nan
        }
        if variance > 0 && (variance < 0x1p-200 || variance > 0x1p200 || abs(mean) > 0x1p100) {
            for c in 0 ..< p.channelsPerGroup {
                let wc = Double(w[c]), bc = Double(b[c])
                for i in c &* p.spatial ..< (c &+ 1) &* p.spatial {
                    y[i] = Float((Double(x[i]) - mean) * rstd * wc + bc)
                }
            }
        } else {
            let hi = Float(mean)
            p.groupNorm.affine(x, y, p.channelsPerGroup, p.spatial, hi, Float(mean - Double(hi)), Float(rstd), w, b)
        }
        return RowStatistics(mean: mean, rstd: rstd)
    }

    /// The row's mean, `1/sqrt(var + eps)` and variance, or nil for a row holding NaN
    /// or infinity.
    @inline(__always)
    static func statistics(_ x: UnsafePointer<Float>, _ n: Int, _ p: GroupNormParameters)
        -> (mean: Double, rstd: Double, variance: Double)? {
        let invN = 1 / Double(n)
        var shift = Float(BLAS.dotRepeating(n, x, p.ones) * invN)
        if !shift.isFinite { shift = 0 }
        for pass in 0 ..< 2 {
            let m = p.layerNorm.row_moments(x, n, shift)
            let delta = m.sum * invN, meanSquare = m.sum_squares * invN
            guard delta.isFinite && meanSquare.isFinite else { return nil }
            let variance = meanSquare - delta * delta
            let mean = Double(shift) + delta
            if delta * delta <= variance || pass == 1 {
                return (mean, 1 / (max(variance, 0) + p.eps).squareRoot(), variance)
            }
            shift = Float(mean)
        }
        return nil
    }

    /// Backward over blocks `blocks`: dx for each row, and per block the channels'
    /// partial Σ dy·x̂ and Σ dy (in row order).
    static func backward(_ r: BackwardRows, blocks: Range<Int>, _ p: GroupNormParameters) {
        let n = r.length, channels = p.groups &* p.channelsPerGroup
        for b in blocks {
            let pw = r.partialWeight.map { $0.assumingMemoryBound(to: Double.self) + b &* channels }
            let pb = r.partialBias.map { $0.assumingMemoryBound(to: Double.self) + b &* channels }
            pw?.update(repeating: 0, count: channels)
            pb?.update(repeating: 0, count: channels)
            let first = b &* r.rowsPerBlock
            for row in first ..< min(r.rows, first &+ r.rowsPerBlock) {
                let o = row &* n
                let c0 = (row % p.groups) &* p.channelsPerGroup
                let mean = r.means![row], rstd = r.scales[row]
                var sums = (0.0, 0.0)
                withUnsafeMutableBytes(of: &sums) { s in
                    p.groupNorm.backward_sums(r.x + o, r.dy + o, p.channelsPerGroup, p.spatial, mean, rstd, p.weight + c0,
                                              s.baseAddress!.assumingMemoryBound(to: Double.self),
                                              pw.map { $0 + c0 }, pb.map { $0 + c0 })
                }
                p.groupNorm.backward_dx(r.x + o, r.dy + o, r.dx + o, p.channelsPerGroup, p.spatial, mean, rstd,
                                        p.weight + c0, sums.0 / Double(n), sums.1 / Double(n), r.accumulate ? 1 : 0)
            }
            r.fallbackRows[b] = 0
        }
    }
}
