// Streaming stores (Support/StreamingStores.swift): LayerNorm's `forward_row_sampled_stream`
// writes y through non-temporal stores from y's first vector-aligned element on, the
// elements before it in one partial vector. It must give the outcome, bits and
// statistics of `forward_row_sampled` at every alignment of x and y, write nothing
// outside the row, and the engine's streamed calls must equal its plain ones.

import CNormKernels
@testable import NormKit
import Testing

@Suite("Streaming stores")
struct StreamingStoreTests {
    /// Every hard row and fallback row of the half kernels' tests, at every x and y
    /// offset within a vector, at every level: the same return, y and stats, and the
    /// floats around y untouched. Under a sanitizer the long rows go but 1000 (its ends
    /// are those of the others: whole vectors and a tail).
    @Test func rowKernelMatchesPlainStores() throws {
        let guardValue = Float(bitPattern: 0x7fc0_1234)  // a NaN with a payload no kernel writes
        for level in InstructionSet.supported {
            let k = Kernels.layerNorm(at: level)
            for dim in Sanitizer.any ? [1, 5, 15, 16, 17, 33, 1000] : [1, 5, 15, 16, 17, 33, 512, 768, 1000, 4099] {
                let layer = try HalfRowKernelTests.layer(dim: dim)
                let rows = HalfRowKernelTests.rows(dim: dim)
                layer.withParameters(level) { p in
                    for (r, row) in rows.enumerated() {
                        for xOffset in [0, 3] {
                            for yOffset in 0 ..< 16 {
                                let x = [Float](repeating: 0, count: xOffset) + row
                                var plain = [Float](repeating: guardValue, count: dim + 32)
                                var streamed = plain
                                var plainStats = [Double](repeating: .nan, count: 2), streamedStats = plainStats
                                let (a, b) = x.withUnsafeBufferPointer { xp in
                                    let xr = xp.baseAddress! + xOffset
                                    let a = plain.withUnsafeMutableBufferPointer { y in
                                        k.forward_row_sampled(xr, y.baseAddress! + yOffset, dim, p.eps, p.weight, p.bias,
                                                              p.weightMax, p.biasMax, &plainStats)
                                    }
                                    let b = streamed.withUnsafeMutableBufferPointer { y in
                                        k.forward_row_sampled_stream(xr, y.baseAddress! + yOffset, dim, p.eps, p.weight,
                                                                     p.bias, p.weightMax, p.biasMax, &streamedStats)
                                    }
                                    nk_stream_fence()
                                    return (a, b)
                                }
                                let label = "\(level) dim \(dim) row \(r) x+\(xOffset) y+\(yOffset)"
                                #expect(a == b, "\(label): refused \(a) plain, \(b) streamed")
                                let outside = Array(0 ..< yOffset) + Array(yOffset + dim ..< dim + 32)
                                #expect(outside.allSatisfy { streamed[$0].bitPattern == guardValue.bitPattern },
                                        "\(label): wrote outside the row")
                                guard a == 0, b == 0 else { continue }  // refused: y holds no result
                                #expect(streamed.map(\.bitPattern) == plain.map(\.bitPattern), "\(label): y differs")
                                #expect(streamedStats.map(\.bitPattern) == plainStats.map(\.bitPattern),
                                        "\(label): statistics differ")
                            }
                        }
                    }
                }
            }
        }
    }

    /// The engine's forms with streaming forced on and off: the same bits for tensors,
    /// misaligned caller buffers, training statistics and the fused add, on 1 and 2
    /// threads, at every level.
    @Test func engineStreamsTheSameBits() throws {
        for level in InstructionSet.supported {
            for dim in [768, 513] {
                let layer = try HalfRowKernelTests.layer(dim: dim)
                let rows = 67
                let x = Tensor.randomUniform([rows, dim], lower: -2, upper: 2, seed: UInt64(dim))
                let h0 = Tensor.randomNormal([rows, dim], seed: 3)
                func run(_ stream: Bool, threads: Int) throws -> [[UInt64]] {
                    try StreamingStores.$forced.withValue(stream) {
                        try Parallelism.withThreadCount(threads) {
                            try InstructionSet.with(level) {
                                var y = Tensor.zeros([rows, dim])
                                try layer.forward(x, into: &y)
                                let (trained, stats) = try layer.forwardForTraining(x)
                                var h = h0, fused = Tensor.zeros([rows, dim])
                                try layer.forward(x, addingTo: &h, into: &fused)
                                // Caller memory one float off a vector boundary.
                                var raw = [Float](repeating: 0, count: rows * dim + 1)
                                try x.withUnsafeBufferPointer { xp in
                                    try raw.withUnsafeMutableBufferPointer { r in
                                        try layer.forward(xp, into: UnsafeMutableBufferPointer(rebasing: r[1...]))
                                    }
                                }
                                let statBits = (stats.means + stats.reciprocalStandardDeviations).map(\.bitPattern)
                                return [y.scalars, trained.scalars, fused.scalars, h.scalars, Array(raw[1...])]
                                    .map { $0.map { UInt64($0.bitPattern) } } + [statBits]
                            }
                        }
                    }
                }
                let plain = try run(false, threads: 1)
                for threads in [1, 2] {
                    let streamed = try run(true, threads: threads)
                    for (i, name) in ["into", "training", "fused", "stream h", "raw", "statistics"].enumerated() {
                        #expect(streamed[i] == plain[i], "\(level) dim \(dim) \(threads) threads: \(name) differs")
                    }
                }
            }
        }
    }

    /// The size rule: big calls with long rows stream; small calls and short rows do not.
    /// The threshold is 32 MiB, or a third of the reported last-level cache when more.
    @Test func policy() {
        let threshold = StreamingStores.thresholdBytes
        #expect(threshold >= 32 << 20)
        #expect(threshold == max(32 << 20, (nk_last_level_cache_bytes() / 3) & ~((1 << 20) - 1)))
        #expect(threshold % (1 << 20) == 0)
        // x and y of `rows` rows of 768 floats: 6 KiB a row.
        let atThreshold = (threshold + 6143) / 6144
        #expect(StreamingStores.pays(rows: atThreshold, length: 768))
        #expect(!StreamingStores.pays(rows: atThreshold - 1, length: 768))
        #expect(!StreamingStores.pays(rows: 4 * 1024, length: 768))
        #expect(!StreamingStores.pays(rows: 32 * atThreshold, length: 128))
        #expect(StreamingStores.pays(rows: 2 * atThreshold, length: 512))
        #expect(StreamingStores.pays(rows: Int.max, length: 1024))
        #expect(!StreamingStores.pays(rows: 1, length: 768))
    }
}
