// When a forward writes its output with non-temporal ("streaming") stores: lines go to
// memory without first being read into cache (a plain store reads each line of y before
// writing it, so a call from DRAM moves three streams, not two) and without displacing
// what is in cache. It pays only when the output could not have stayed in cache anyway,
// and only for LayerNorm: RMSNorm's lighter rows already keep up with memory with plain
// stores (measurements: docs/performance.md, "Streaming stores").
//
// Streaming never changes a value: the `_stream` kernels compute each element exactly as
// the plain ones do. Only the float forms stream (the half forms' outputs are half the
// bytes), never in place (the lines were just read), and never into scratch memory.

import CNormKernels  // include/nk_platform.h: nk_last_level_cache_bytes

enum StreamingStores {
    /// The input and output bytes of a call from which its output is streamed (and from
    /// which the other size rules below call it "from memory"): 32 MiB, or a third of the
    /// last-level cache the C library reports when that is more, rounded down to a whole
    /// MiB. Measured (docs/performance.md, "Streaming's threshold on a machine with a large
    /// cache"): on the AMD Zen 4 machines, streaming won from 25-50 MB on; on an Intel Xeon
    /// reporting a 300 MB L3 (shared with other tenants), plain stores won up to 96 MB and
    /// streaming from 144 MB.
    static let thresholdBytes: Int = max(32 << 20, (nk_last_level_cache_bytes() / 3) & ~((1 << 20) - 1))

    /// The shortest row that streams. Each row starts with the elements before y's first
    /// vector-aligned address and ends with a partial vector, both plain stores, so one
    /// line a row is read for ownership out of stream order; short rows lost by it.
    static let minimumRowLength = 512

    /// A test's override of the size rule for calls made in its scope (this task).
    @TaskLocal static var forced: Bool?

    /// Whether a float forward over `rows` rows of `length` elements streams its output.
    static func pays(rows: Int, length: Int) -> Bool {
        if let forced { return forced }
        return length >= minimumRowLength && outgrowsCache(rows: rows, length: length)
    }

    /// Whether `streams` float arrays of `rows` rows of `length` elements (a forward's input
    /// and output: 2; the fused add's x, stream, sum and output: 4) together reach
    /// ``thresholdBytes``, about the last-level cache (RMSKernel pipelines only calls below
    /// it; the fused LayerNorm add takes no batches of short rows above it).
    static func outgrowsCache(rows: Int, length: Int, streams: Int = 2) -> Bool {
        let (elements, overflow) = rows.multipliedReportingOverflow(by: length)
        return overflow || elements >= thresholdBytes / (streams * MemoryLayout<Float>.stride)
    }
}
