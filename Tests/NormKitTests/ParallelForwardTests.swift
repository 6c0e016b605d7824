@testable import NormKit
import NormKitTesting
import Synchronization
import Testing

/// Bits of a float array, so NaN rows compare equal to themselves.
private func bits(_ values: [Float]) -> [UInt32] { values.map(\.bitPattern) }

/// The first index where two bit arrays differ (or the shorter length), nil when equal:
/// a failing expectation then prints one index, not two arrays of a million numbers.
private func firstDifference<T: Equatable>(_ a: [T], _ b: [T]) -> Int? {
    if let i = a.indices.first(where: { $0 < b.count && a[$0] != b[$0] }) { return i }
    return a.count == b.count ? nil : min(a.count, b.count)
}

/// Rows large enough to be split over threads: random rows with hard rows mixed in.
private func mixedInput(rows: Int, dim: Int) throws -> Tensor {
    var x = Tensor.randomNormal([rows, dim], mean: 0.2, standardDeviation: 3, seed: 77)
    x.withUnsafeMutableBufferPointer { p in
        for (k, name) in HardRows.names.enumerated() {
            let row = HardRows.make(name, dim: dim, seed: UInt64(k))
            let r = (k * 37 + 5) % rows
            for i in 0..<dim { p[r * dim + i] = row[i] }
        }
        if rows > 3 { p[3 * dim + dim / 2] = .nan }
    }
    return x
}

@Suite("Parallel forward")
struct ParallelForwardTests {
    /// dim 1 (196,611 rows of one element) is left to the plain runs under ThreadSanitizer:
    /// the pool splits its rows as it splits the others'.
    @Test(arguments: Sanitizer.thread ? [768, 33, 4099] : [768, 1, 33, 4099])
    func outputIsBitwiseIdenticalForOneTwoAndSevenThreads(dim: Int) throws {
        // At least a few blocks of rows, so 2 and 7 threads really split the work.
        let rows = max(64, 6 * RowParallel.blockSize(dim: dim) + 3)
        var norm = try LayerNorm(dim: dim)
        norm.weight = Tensor.randomNormal([dim], mean: 1, standardDeviation: 0.5, seed: 3)
        norm.bias = Tensor.randomNormal([dim], standardDeviation: 0.2, seed: 4)
        let x = try mixedInput(rows: rows, dim: dim)
        #expect(RowParallel.workerCount(rows: rows, dim: dim, threads: 7) > 1 || rows * dim < 2 * RowParallel.minElementsPerThread)

        let one = try Parallelism.withThreadCount(1) { try norm(x) }
        for threads in [2, 7] {
            // Other tests run at the same time and may hold the pool (then a call runs on
            // its own thread): repeat until helper threads have taken part.
            let many = try Split.run(threads: threads, "dim \(dim), \(threads) threads") { try norm(x) }
            #expect(firstDifference(bits(many.scalars), bits(one.scalars)) == nil, "dim \(dim), \(threads) threads")
            var into = Tensor.zeros(x.shape)
            try Split.run(threads: threads, "forward(into:), dim \(dim), \(threads) threads") { try norm.forward(x, into: &into) }
            #expect(firstDifference(bits(into.scalars), bits(one.scalars)) == nil, "forward(into:), dim \(dim), \(threads) threads")
        }
        // Still exact where it is finite.
        let expected = try Reference.layerNormDouble(x, weight: norm.weight, bias: norm.bias, eps: norm.eps)
        var finiteRows: [Float] = [], finiteExpected: [Double] = []
        for r in 0..<rows {
            let row = Array(one.scalars[(r * dim)..<((r + 1) * dim)])
            if row.allSatisfy(\.isFinite) {
                finiteRows += row
                finiteExpected += expected[(r * dim)..<((r + 1) * dim)]
            }
        }
        let error = Reference.maxRowError(try Tensor(shape: [finiteRows.count / dim, dim], scalars: finiteRows),
                                          expected: finiteExpected)
        #expect(error <= forwardBound, "dim \(dim): error \(error)")
    }

    @Test func rowStatisticsAreBitwiseIdenticalForOneTwoAndSevenThreads() throws {
        let dim = 768, rows = 300
        let norm = try LayerNorm(dim: dim)
        let x = try mixedInput(rows: rows, dim: dim)
        func statistics(threads: Int) -> (y: [Float], mean: [Double], rstd: [Double]) {
            var y = [Float](repeating: 0, count: rows * dim)
            var mean = [Double](repeating: 0, count: rows), rstd = [Double](repeating: 0, count: rows)
            Split.run(threads: threads, "runForward, \(threads) threads") {
                x.withUnsafeBufferPointer { xp in
                    y.withUnsafeMutableBufferPointer { yp in
                        mean.withUnsafeMutableBufferPointer { m in
                            rstd.withUnsafeMutableBufferPointer { s in
                                norm.runForward(xp, yp, rows: rows, mean: m.baseAddress, rstd: s.baseAddress)
                            }
                        }
                    }
                }
            }
            return (y, mean, rstd)
        }
        let one = statistics(threads: 1)
        for threads in [2, 7] {
            let many = statistics(threads: threads)
            #expect(firstDifference(bits(many.y), bits(one.y)) == nil, "\(threads) threads")
            #expect(firstDifference(many.mean.map(\.bitPattern), one.mean.map(\.bitPattern)) == nil, "mean, \(threads) threads")
            #expect(firstDifference(many.rstd.map(\.bitPattern), one.rstd.map(\.bitPattern)) == nil, "rstd, \(threads) threads")
        }
        // The statistics are the row's own: compare a clean row with the Double reference.
        let r = 10
        let row = x.scalars[(r * dim)..<((r + 1) * dim)].map(Double.init)
        let mean = row.reduce(0, +) / Double(dim)
        #expect(abs(one.mean[r] - mean) <= 1e-6 * max(1, abs(mean)))
    }

    @Test(arguments: [1, 7, 8, 17, 768, 1027])
    func groupedRowsGiveTheSameBitsAsRowsAlone(dim: Int) throws {
        // The kernel writes fast-path rows four at a time; a row alone (or in a group of
        // one to three) must come out with exactly the same bits.
        var norm = try LayerNorm(dim: dim)
        norm.weight = Tensor.randomNormal([dim], mean: 1, standardDeviation: 0.5, seed: 8)
        norm.bias = Tensor.randomNormal([dim], standardDeviation: 0.2, seed: 9)
        let rows = 11
        let x = Tensor.randomNormal([rows, dim], mean: 0.1, standardDeviation: 2, seed: UInt64(dim))
        let together = try norm(x)
        for r in 0..<rows {
            let row = Array(x.scalars[(r * dim)..<((r + 1) * dim)])
            let alone = try norm(try Tensor(shape: [dim], scalars: row))
            #expect(firstDifference(bits(alone.scalars), bits(Array(together.scalars[(r * dim)..<((r + 1) * dim)]))) == nil, "row \(r)")
        }
    }

    @Test func concurrentCallersGetTheSameBits() async throws {
        let dim = 768
        let norm = try LayerNorm(dim: dim)
        let x = try mixedInput(rows: 200, dim: dim)
        let expected = bits(try Parallelism.withThreadCount(1) { try norm(x) }.scalars)
        try await withThrowingTaskGroup(of: [UInt32].self) { group in
            for t in 0..<8 {
                group.addTask {
                    try Parallelism.withThreadCount(1 + t % 3) { bits(try norm(x).scalars) }
                }
            }
            for try await result in group { #expect(firstDifference(result, expected) == nil) }
        }
    }
}

@Suite("RowParallel blocks")
struct RowParallelTests {
    /// Records, per block index, the rows it was given (each block writes only its own slot).
    private func blocks(rows: Int, blockSize: Int, threads: Int) -> [Range<Int>?] {
        let count = RowParallel.blockCount(rows: rows, blockSize: blockSize)
        var seen = [Range<Int>?](repeating: nil, count: count)
        var calls = [Int](repeating: 0, count: count)
        seen.withUnsafeMutableBufferPointer { s in
            calls.withUnsafeMutableBufferPointer { c in
                RowParallel.forEachBlock(rows: rows, blockSize: blockSize, threads: threads) { range, b in
                    s[b] = range
                    c[b] += 1
                }
            }
        }
        #expect(calls.allSatisfy { $0 == 1 }, "every block runs exactly once")
        return seen
    }

    @Test(arguments: [(0, 5), (1, 5), (10, 5), (11, 5), (1000, 7), (64, 64)])
    func blockBoundariesDoNotDependOnTheThreadCount(rows: Int, blockSize: Int) {
        let one = blocks(rows: rows, blockSize: blockSize, threads: 1)
        for threads in [2, 3, 7, 64] {
            #expect(blocks(rows: rows, blockSize: blockSize, threads: threads) == one)
        }
        // The blocks tile 0..<rows in order, blockSize each but the last.
        var next = 0
        for (b, range) in one.enumerated() {
            #expect(range?.lowerBound == next)
            #expect(range?.count == min(blockSize, rows - b * blockSize))
            next = range?.upperBound ?? -1
        }
        #expect(next == rows || (rows == 0 && one.isEmpty))
    }

    @Test func perBlockPartialsReduceToTheSameBits() {
        // The pattern a backward pass uses: one partial per block, summed in block order.
        let rows = 5000, blockSize = 64
        let values = (0..<rows).map { Float(($0 &* 2_654_435_761) % 2001 - 1000) * 1.37 }
        func reduce(threads: Int) -> Float {
            var partials = [Float](repeating: 0, count: RowParallel.blockCount(rows: rows, blockSize: blockSize))
            partials.withUnsafeMutableBufferPointer { p in
                RowParallel.forEachBlock(rows: rows, blockSize: blockSize, threads: threads) { range, b in
                    var s: Float = 0
                    for r in range { s += values[r] }
                    p[b] = s
                }
            }
            return partials.reduce(0, +)
        }
        let one = reduce(threads: 1)
        for threads in [2, 7] {
            let many = Split.run(threads: threads, "\(threads) threads") { reduce(threads: threads) }
            #expect(many.bitPattern == one.bitPattern)
        }
    }

    @Test func nestedCallsRunInline() {
        var inner = [Int](repeating: 0, count: 8)
        inner.withUnsafeMutableBufferPointer { p in
            RowParallel.forEachBlock(rows: 8, blockSize: 1, threads: 4) { outer, b in
                RowParallel.forEachBlock(rows: 10, blockSize: 3, threads: 4) { range, _ in
                    p[b] += range.count
                }
            }
        }
        #expect(inner == [Int](repeating: 10, count: 8))
    }
}

@Suite("Parallelism settings")
struct ParallelismTests {
    @Test func scopedCountsAreClampedAndNest() {
        #expect(Parallelism.withThreadCount(0) { Parallelism.effectiveThreadCount } == 1)
        #expect(Parallelism.withThreadCount(-5) { Parallelism.effectiveThreadCount } == 1)
        #expect(Parallelism.withThreadCount(1 << 40) { Parallelism.effectiveThreadCount } == Parallelism.maxThreadCount)
        Parallelism.withThreadCount(3) {
            #expect(Parallelism.effectiveThreadCount == 3)
            Parallelism.withThreadCount(5) { #expect(Parallelism.effectiveThreadCount == 5) }
            #expect(Parallelism.effectiveThreadCount == 3)
        }
    }

    @Test func defaultIsAtLeastOne() {
        #expect(Parallelism.defaultThreadCount >= 1)
        #expect(Parallelism.activeProcessorCount >= 1)
        #expect(Parallelism.threadCount >= 1)
    }

    @Test func smallInputsStayOnTheCallersThread() {
        #expect(RowParallel.workerCount(rows: 1, dim: 768, threads: 8) == 1)
        #expect(RowParallel.workerCount(rows: 64, dim: 768, threads: 8) == 1)
        #expect(RowParallel.workerCount(rows: 1024, dim: 768, threads: 8) == 8)
        #expect(RowParallel.workerCount(rows: 1024, dim: 768, threads: 2) == 2)
        #expect(RowParallel.workerCount(rows: 100, dim: 768, threads: 8) == 2)
    }
}

@Suite("Parallel backward")
struct ParallelBackwardTests {
    @Test(arguments: [768, 33])
    func gradientsAreBitwiseIdenticalForOneTwoAndSevenThreads(dim: Int) throws {
        // Enough rows for several backward blocks and for the split to happen.
        let rows = max(300, 3 * RowParallel.minElementsPerThread / dim)
        var norm = try LayerNorm(dim: dim)
        norm.weight = Tensor.randomNormal([dim], mean: 1, standardDeviation: 0.5, seed: 13)
        norm.bias = Tensor.randomNormal([dim], standardDeviation: 0.2, seed: 14)
        let x = Tensor.randomNormal([rows, dim], mean: 0.3, standardDeviation: 2, seed: 15)
        let dy = Tensor.randomNormal([rows, dim], seed: 16)
        #expect(RowParallel.workerCount(rows: rows, dim: dim, threads: 7) > 1)

        // Each pass on its own, so the probe shows that each of them was split.
        func gradients(threads: Int) throws -> (fresh: LayerNorm.Gradients, accumulated: LayerNorm.Gradients) {
            let (_, statistics) = try Split.run(threads: threads, "forwardForTraining, \(threads) threads") {
                try norm.forwardForTraining(x)
            }
            let fresh = try Split.run(threads: threads, "backward, \(threads) threads") {
                try norm.backward(outputGradient: dy, input: x, statistics: statistics)
            }
            // Accumulates into a copy of `fresh`.
            let accumulated = try Split.run(threads: threads, "accumulating backward, \(threads) threads") {
                var accumulated = fresh
                try norm.backward(outputGradient: dy, input: x, statistics: statistics, accumulatingInto: &accumulated)
                return accumulated
            }
            return (fresh, accumulated)
        }
        let one = try gradients(threads: 1)
        for threads in [2, 7] {
            let many = try gradients(threads: threads)
            for (name, a, b) in [("dx", many.fresh.input, one.fresh.input), ("dweight", many.fresh.weight, one.fresh.weight),
                                 ("dbias", many.fresh.bias, one.fresh.bias),
                                 ("accumulated dx", many.accumulated.input, one.accumulated.input),
                                 ("accumulated dweight", many.accumulated.weight, one.accumulated.weight),
                                 ("accumulated dbias", many.accumulated.bias, one.accumulated.bias)] {
                #expect(firstDifference(bits(a.scalars), bits(b.scalars)) == nil, "\(name), dim \(dim), \(threads) threads")
            }
        }
    }
}
