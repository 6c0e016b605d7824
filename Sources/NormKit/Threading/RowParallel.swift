// Running a body over blocks of rows on several threads: the one launcher under
// RowDriver (forward) and RowEngine (backward).
//
// Rows are independent, so a forward pass needs no more than "split the rows, run
// each part somewhere". A reduction over rows (the parameter gradients of a backward
// pass) needs more: its result must not depend on the thread count. `forEachBlock` gives that: the block boundaries come from `blockSize`
// alone, never from the thread count or from which thread runs a block, so a caller
// that keeps one partial sum per block and adds the partials in block order gets the
// same bits on 1 or 64 threads.
//
// Blocks are handed out one at a time from a shared counter (the calling thread takes
// blocks too), so a core that is busy with something else simply takes fewer blocks:
// on a shared machine a static split would wait for the slowest thread.

import Dispatch

enum RowParallel {
    /// Below this many elements per thread a split costs more than it gains: handing a
    /// block to a helper costs far less than a block of 32 Ki floats takes to compute,
    /// but not less than a handful of rows (docs/performance.md, "How the forward pass
    /// is built", has the measured costs).
    static let minElementsPerThread = 32 * 1024

    /// The rows per block that make a block about `minElementsPerThread` elements: big
    /// enough that claiming it is noise, small enough to balance a busy core.
    static func blockSize(dim: Int) -> Int {
        max(1, minElementsPerThread / max(dim, 1))
    }

    /// The number of threads worth using for `rows` rows of `dim` elements when up to
    /// `threads` are allowed: 1 for inputs under two blocks' worth, never more than the
    /// number of blocks.
    static func workerCount(rows: Int, dim: Int, threads: Int) -> Int {
        let elements = rows.multipliedReportingOverflow(by: dim)
        if elements.overflow == false && elements.partialValue < 2 &* minElementsPerThread { return 1 }
        let blocks = rows / blockSize(dim: dim)
        return max(1, min(threads, blocks))
    }

    /// The code of a block for the allocation-free ``forEachBlock(rows:blockSize:threads:context:function:)``:
    /// `function(context, start, end, blockIndex)` handles rows `start..<end`.
    typealias BlockFunction = @convention(c) (
        _ context: UnsafeMutableRawPointer, _ start: Int, _ end: Int, _ blockIndex: Int
    ) -> Void

    /// Runs `body` once for each block of `blockSize` consecutive rows in `0..<rows`
    /// (the last block may be shorter), passing the block's rows and its index, on up
    /// to `threads` threads (the caller's included).
    ///
    /// Block `i` is always rows `i·blockSize ..< min((i+1)·blockSize, rows)`, whatever
    /// `threads` is and whichever thread runs it. Blocks are started in increasing
    /// order, but run concurrently: `body` must only write what its block owns (for a
    /// reduction, a partial per block index, summed in index order afterwards). Returns
    /// when every block has run. A call made while the pool is busy (from another
    /// thread, or from inside a `body`) runs its blocks on the calling thread, in order.
    ///
    /// A parallel call costs one small allocation (handing a non-escaping closure to
    /// other threads needs a heap thunk); the `context:function:` variant costs none.
    static func forEachBlock(
        rows: Int, blockSize: Int, threads: Int,
        _ body: (_ rows: Range<Int>, _ blockIndex: Int) -> Void
    ) {
        precondition(rows >= 0 && blockSize >= 1, "RowParallel.forEachBlock: rows >= 0, blockSize >= 1")
        let blocks = blockCount(rows: rows, blockSize: blockSize)
        if min(threads, blocks) <= 1 {
            for b in 0..<blocks {
                let start = b &* blockSize
                body(start ..< min(start &+ blockSize, rows), b)
            }
            return
        }
        withoutActuallyEscaping(body) { body in
            var closure = body
            withUnsafeMutablePointer(to: &closure) { pointer in
                forEachBlock(rows: rows, blockSize: blockSize, threads: threads, context: pointer) { context, start, end, b in
                    context.assumingMemoryBound(to: ((Range<Int>, Int) -> Void).self).pointee(start ..< end, b)
                }
            }
        }
    }

    /// The same as ``forEachBlock(rows:blockSize:threads:_:)`` without a closure:
    /// `function(context, start, end, blockIndex)` runs for each block. Allocates nothing
    /// (once the pool's threads exist). `context` must stay valid until it returns.
    static func forEachBlock(
        rows: Int, blockSize: Int, threads: Int,
        context: UnsafeMutableRawPointer, function: BlockFunction
    ) {
        precondition(rows >= 0 && blockSize >= 1, "RowParallel.forEachBlock: rows >= 0, blockSize >= 1")
        let blocks = blockCount(rows: rows, blockSize: blockSize)
        let workers = min(max(threads, 1), blocks)
        var job = BlockJob(rows: rows, blockSize: blockSize, context: context, function: function)
        if workers <= 1 {
            for b in 0..<blocks { job.run(b) }
            SplitProbe.current?.record(threads: 1)
            return
        }
        let probe = SplitProbe.current
        withUnsafeMutablePointer(to: &job) { pointer in
            if #available(macOS 15.0, iOS 18.0, tvOS 18.0, watchOS 11.0, visionOS 2.0, *) {
                let ran = WorkerPool.shared.run(
                    parts: blocks, helpers: workers - 1, strict: probe?.requiresSplit ?? false, context: pointer
                ) { pointer, b in
                    pointer.assumingMemoryBound(to: BlockJob.self).pointee.run(b)
                }
                probe?.record(threads: ran)
            } else {
                // Older Apple systems have no Synchronization atomics: a static split of
                // contiguous block runs over Dispatch (which allocates).
                let shared = UncheckedSendable(pointer)
                DispatchQueue.concurrentPerform(iterations: workers) { w in
                    for b in (w &* blocks / workers) ..< ((w &+ 1) &* blocks / workers) { shared.value.pointee.run(b) }
                }
                probe?.record(threads: workers)
            }
        }
    }

    static func blockCount(rows: Int, blockSize: Int) -> Int {
        rows / blockSize + (rows % blockSize == 0 ? 0 : 1)
    }

    /// A block job as the pool sees it: which rows block `b` covers, and what to call.
    struct BlockJob {
        var rows: Int
        var blockSize: Int
        var context: UnsafeMutableRawPointer
        var function: BlockFunction

        @inline(__always)
        func run(_ b: Int) {
            let start = b &* blockSize
            function(context, start, min(start &+ blockSize, rows), b)
        }
    }
}

/// Carries a value into a `@Sendable` closure that the caller knows is safe: here, a
/// body that only touches its own block's rows, run while the caller waits.
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
