// The engine's drivers: a norm's row functions over all rows of a call, on the worker
// pool (RowDriver), with the backward's per-call scratch and its parameter-gradient
// reduction. Non-generic: the public forms (Normalization+Forward.swift,
// Normalization+Backward.swift) call in with a norm's `_RowFunctions`.
//
// Determinism: forward rows are independent. Backward rows are grouped into fixed
// blocks of `BackwardRows.blockRows`; each block sums its rows' parameter terms, in
// row order, into its own partial, and the partials are added here in block order, in
// Double. Block boundaries do not depend on the thread count, so neither do the bits.

/// One backward call's rows, outputs and per-block partial sums, as raw pointers.
/// Blocks may run on several threads at once: each writes only its own rows of `dx`,
/// its own partials and its own `fallbackRows` entry.
struct BackwardRows: @unchecked Sendable {
    /// Rows per block of partial parameter gradients for LayerNorm and RMSNorm. Fixed:
    /// changing it changes the rounding of the parameter gradients (not of dx).
    static let blockRows = 64

    var rows: Int
    /// Rows per block (`_RowFunctions.rowsPerBlock`).
    var rowsPerBlock: Int
    var length: Int
    var inner: Int
    var x: UnsafePointer<Float>
    var dy: UnsafePointer<Float>
    var dx: UnsafeMutablePointer<Float>
    /// Whether dx is added into (`dx += gradient`) rather than overwritten.
    var accumulate: Bool
    var means: UnsafePointer<Double>?
    var scales: UnsafePointer<Double>
    /// `blocks × parameterCount` partial weight sums (Float or Double, as the norm's
    /// `partialsAreDouble` says), or nil when not wanted.
    var partialWeight: UnsafeMutableRawPointer?
    /// The same for the bias.
    var partialBias: UnsafeMutableRawPointer?
    /// Per block, the rows that took an exact fallback.
    var fallbackRows: UnsafeMutablePointer<Int>
}

enum RowEngine {
    /// An empty tensor, put in place of a gradient while the engine writes it.
    static let placeholder = Tensor(uncheckedShape: [0], count: 0) { _ in }

    /// Runs `functions.forward` (or `addForward`, when `residual` and `sum` are given)
    /// over all rows of `layout`. Allocates nothing.
    static func forward(
        _ functions: _RowFunctions, _ layout: _RowLayout,
        x: UnsafePointer<Float>, residual: UnsafePointer<Float>?, sum: UnsafeMutablePointer<Float>?,
        y: UnsafeMutablePointer<Float>, means: UnsafeMutablePointer<Double>?, scales: UnsafeMutablePointer<Double>?
    ) {
        var job = ForwardJob(functions: functions, x: x, residual: residual, sum: sum, y: y, means: means, scales: scales)
        RowDriver.run(rows: layout.rows, dim: layout.length, job: &job) { context, start, end, _ in
            let j = UnsafePointer(context.assumingMemoryBound(to: ForwardJob.self))
            let f = j.pointee.functions
            if let residual = j.pointee.residual, let sum = j.pointee.sum {
                f.addForward(f.context, j.pointee.x, residual, sum, j.pointee.y, start, end, j.pointee.means, j.pointee.scales)
            } else {
                f.forward(f.context, j.pointee.x, j.pointee.y, start, end, j.pointee.means, j.pointee.scales)
            }
        }
    }

    /// Runs `functions.backward` over every block of `rows` (scheduled by `schedule`:
    /// ``onPool(_:blocks:_:)`` for the public calls), reduces the blocks' partials in block
    /// order into Double sums and hands them to `finish` (nil for a gradient not
    /// wanted). Returns the number of rows that took an exact fallback.
    ///
    /// The partials, fallback counts and sums live in this thread's
    /// `ThreadScratch.call` block: no allocation once this thread has made a call of
    /// this size.
    @discardableResult
    static func backward(
        _ functions: _RowFunctions, _ layout: _RowLayout, x: UnsafePointer<Float>, dy: UnsafePointer<Float>,
        dx: UnsafeMutablePointer<Float>, accumulate: Bool, means: UnsafePointer<Double>?, scales: UnsafePointer<Double>,
        parameterCount p: Int, weight wantWeight: Bool, bias wantBias: Bool,
        schedule: (UnsafeMutablePointer<BackwardCall>, Int) -> Void,
        finish: (UnsafePointer<Double>?, UnsafePointer<Double>?) -> Void
    ) -> Int {
        let blocks = (layout.rows &+ functions.rowsPerBlock &- 1) / functions.rowsPerBlock
        // Layout: [partial weight: blocks·p][partial bias: blocks·p]
        //         [fallback counts: blocks Ints][weight sums: p doubles][bias sums: p doubles]
        let size = functions.partialsAreDouble ? MemoryLayout<Double>.stride : MemoryLayout<Float>.stride
        let partialBytes = blocks &* p &* size
        let countsOffset = (2 &* partialBytes &+ 63) & ~63
        let sumsOffset = (countsOffset &+ blocks &* MemoryLayout<Int>.stride &+ 63) & ~63
        let raw = ThreadScratch.call.buffer(bytes: sumsOffset &+ 2 &* p &* MemoryLayout<Double>.stride)
        let fallbacks = (raw + countsOffset).bindMemory(to: Int.self, capacity: blocks)
        let sums = (raw + sumsOffset).bindMemory(to: Double.self, capacity: 2 &* p)
        fallbacks.update(repeating: 0, count: blocks)
        var call = BackwardCall(functions: functions, rows: BackwardRows(
            rows: layout.rows, rowsPerBlock: functions.rowsPerBlock, length: layout.length, inner: layout.inner, x: x, dy: dy, dx: dx, accumulate: accumulate,
            means: means, scales: scales, partialWeight: wantWeight ? raw : nil,
            partialBias: wantBias ? raw + partialBytes : nil, fallbackRows: fallbacks))
        withUnsafeMutablePointer(to: &call) { schedule($0, blocks) }
        if wantWeight { reduce(raw, double: functions.partialsAreDouble, blocks: blocks, count: p, into: sums) }
        if wantBias { reduce(raw + partialBytes, double: functions.partialsAreDouble, blocks: blocks, count: p, into: sums + p) }
        finish(wantWeight ? UnsafePointer(sums) : nil, wantBias ? UnsafePointer(sums + p) : nil)
        var total = 0
        for b in 0..<blocks { total &+= fallbacks[b] }
        return total
    }

    /// The public calls' schedule: `blocks` blocks over the worker pool (on the calling
    /// thread alone for inputs too small to gain).
    static func onPool(_ call: UnsafeMutablePointer<BackwardCall>, blocks: Int, _ layout: _RowLayout) {
        let workers = RowDriver.workers(rows: layout.rows, dim: layout.length)
        if workers == 1 {
            call.pointee.run(0 ..< blocks)
        } else {
            RowParallel.forEachBlock(rows: blocks, blockSize: 1, threads: workers, context: call) { call, start, end, _ in
                call.assumingMemoryBound(to: BackwardCall.self).pointee.run(start ..< end)
            }
        }
    }

    /// sums[j] = Σ_b partials[b·count + j], in block order, in Double.
    static func reduce(_ partials: UnsafeMutableRawPointer, double: Bool, blocks: Int, count: Int,
                       into sums: UnsafeMutablePointer<Double>) {
        sums.update(repeating: 0, count: count)
        if double {
            let p = partials.assumingMemoryBound(to: Double.self)
            for b in 0..<blocks {
                let row = p + b &* count
                for j in 0..<count { sums[j] += row[j] }
            }
        } else {
            let p = partials.assumingMemoryBound(to: Float.self)
            for b in 0..<blocks {
                let row = p + b &* count
                for j in 0..<count { sums[j] += Double(row[j]) }
            }
        }
    }

    /// out[j] = Float(sums[j]), or Float(Double(out[j]) + sums[j]) when adding.
    static func store(_ sums: UnsafePointer<Double>, into out: UnsafeMutableBufferPointer<Float>, adding: Bool) {
        for j in out.indices { out[j] = adding ? Float(Double(out[j]) + sums[j]) : Float(sums[j]) }
    }
}

/// What every block of a forward pass shares.
private struct ForwardJob {
    var functions: _RowFunctions
    var x: UnsafePointer<Float>
    var residual: UnsafePointer<Float>?
    var sum: UnsafeMutablePointer<Float>?
    var y: UnsafeMutablePointer<Float>
    var means: UnsafeMutablePointer<Double>?
    var scales: UnsafeMutablePointer<Double>?
}

/// A backward call as the scheduler sees it: the norm's functions and the rows.
struct BackwardCall: @unchecked Sendable {
    var functions: _RowFunctions
    var rows: BackwardRows

    /// Runs blocks `blocks` (any disjoint ranges may run concurrently).
    func run(_ blocks: Range<Int>) {
        withUnsafePointer(to: rows) { functions.backward(functions.context, $0, blocks) }
    }
}

extension Tensor {
    /// Per-row statistics as a float tensor shaped like the input with its normalised
    /// (trailing) dimensions 1: the trailing dimensions are dropped until the leading
    /// ones hold `values.count` rows (a dimension of 1 is the same either way).
    init(perRowValues values: [Double], inputShape: [Int]) {
        var shape = inputShape
        var k = 1
        while k < shape.count, Shape.product(inputShape.dropLast(k)) != values.count { k += 1 }
        for i in (shape.count - k) ..< shape.count { shape[i] = 1 }
        self.init(uncheckedShape: shape, count: values.count) { out in
            for i in values.indices { out[i] = Float(values[i]) }
        }
    }
}
