// Every norm and form runs on a thread with a small stack. A kernel's frame is allocated
// whole on entry, so one call of each kernel shows whether it fits. In an unoptimised
// build (these tests' own) the kernel layer once needed frames of up to 11 MB (every
// inlined copy's locals in slots of their own: isa/begin.h, NK_INLINE); a thread of a
// macOS process gets 512 KB, and this test crashed with SIGSEGV.

@testable import NormKit
import NormKitTesting
import Testing

@Suite("Stack use: every kernel on a small stack")
struct StackUseTests {
    /// Forward (float, bf16, f16, each plain and with the fused add), training forward and
    /// backward of `norm` on `rows` rows of `dim`: every kernel the engine picks for that
    /// shape. Returns the worst error of the float forward against the float64 reference,
    /// relative to max(1, max |y|) of its row.
    static func exercise<N: RowNormalization>(_ norm: N, rows: Int, dim: Int,
                                              reference: (Tensor) throws -> [Double]) throws -> Double {
        let x = Tensor.randomNormal([rows, dim], mean: 0.5, seed: UInt64(rows * 7919 + dim))
        let y = try norm.forward(x)
        let expected = try reference(x)
        var worst = 0.0
        for r in 0 ..< rows {
            let span = r * dim ..< (r + 1) * dim
            let scale = max(1, span.map { abs(expected[$0]) }.max()!)
            for i in span { worst = max(worst, abs(Double(y.scalars[i]) - expected[i]) / scale) }
        }
        var stream = Tensor.randomNormal([rows, dim], seed: 5), out = x
        try norm.forward(x, addingTo: &stream, into: &out)
        let (_, statistics) = try norm.forwardForTraining(x)
        _ = try norm.backward(outputGradient: Tensor.randomNormal([rows, dim], seed: 6), input: x,
                              statistics: statistics)
        try exerciseHalf(norm, HalfTensor<BFloat16>(rounding: x))
        try exerciseHalf(norm, HalfTensor<Float16>(rounding: x))
        return worst
    }

    /// The half forward of `norm` on `half`, plain and with the fused add.
    static func exerciseHalf<N: RowNormalization, T: HalfPrecisionElement>(_ norm: N, _ half: HalfTensor<T>) throws {
        _ = try norm.forward(half)
        var stream = half, out = half
        try norm.forward(half, addingTo: &stream, into: &out)
    }

    @Test("LayerNorm and RMSNorm, every row kernel, on a 512 KB stack, one thread and two")
    func everyKernelFitsASmallStack() throws {
        let worst = PerThreadSlots(count: 1, initial: Double.nan)
        runOnThreads(1, stackBytes: 512 * 1024) { _ in
            do {
                var w = 0.0
                for threads in [1, 2] {
                    try Parallelism.withThreadCount(threads) {
                        // One row, short rows (batched), rows of middling length, GPT-2's rows,
                        // a row that streams.
                        for (rows, dim) in [(1, 768), (40, 17), (40, 300), (8, 768), (2, 4099)] {
                            let layer = try LayerNorm(dim: dim)
                            w = max(w, try Self.exercise(layer, rows: rows, dim: dim) {
                                try Reference.layerNormDouble($0, weight: layer.weight, bias: layer.bias,
                                                              eps: layer.eps)
                            })
                            let rms = try RMSNorm(dim: dim)
                            w = max(w, try Self.exercise(rms, rows: rows, dim: dim) {
                                try Reference.rmsNormDouble($0, weight: rms.weight, eps: rms.eps,
                                                            weightOffset: rms.weightOffset)
                            })
                        }
                    }
                }
                worst.set(0, w)
            } catch {
                Issue.record("threw \(error)")
            }
        }
        #expect(worst.values[0] <= 1e-6, "worst error \(worst.values[0])")
    }

    @Test("GroupNorm forward and backward on a 512 KB stack")
    func groupNormFitsASmallStack() throws {
        let done = PerThreadSlots(count: 1, initial: false)
        runOnThreads(1, stackBytes: 512 * 1024) { _ in
            do {
                let norm = try GroupNorm(groups: 4, channels: 32)
                let x = Tensor.randomNormal([2, 32, 9, 9], seed: 8)
                let (_, statistics) = try norm.forwardForTraining(x)
                _ = try norm.backward(outputGradient: Tensor.randomNormal([2, 32, 9, 9], seed: 9), input: x,
                                      statistics: statistics)
                done.set(0, true)
            } catch {
                Issue.record("threw \(error)")
            }
        }
        #expect(done.values[0])
    }
}
