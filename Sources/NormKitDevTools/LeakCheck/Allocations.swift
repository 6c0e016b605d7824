// --count-allocations: the calls documented as allocation-free make no allocation.
//
// scripts/leak-check.sh runs this with scripts/malloc-counter.c preloaded, which counts
// every allocation call per thread and in total; without it this mode fails, so a run
// that cannot count never passes. A release build: unspecialized generic code in a
// debug build allocates where the optimised code does not, and release is what users run.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NormKit

/// The preloaded counter's two functions, found with dlsym (nil without the preload).
enum MallocCounter {
    typealias Function = @convention(c) () -> Int
    static let thread = symbol("normkit_malloc_count_thread")
    static let total = symbol("normkit_malloc_count_total")

    private static func symbol(_ name: String) -> Function? {
        guard let p = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else { return nil }
        return unsafeBitCast(p, to: Function.self)
    }
}

/// Checks every allocation-free call at one row (the caller's thread alone) and at
/// [1024, 768] (split over the pool), on 1 and 2 threads, and a positive control.
/// Returns the exit status: 0 when every count is as documented.
func allocationCheck() -> Int32 {
    guard let threadCount = MallocCounter.thread, let totalCount = MallocCounter.total else {
        print("leak-check: FAILED: the malloc counter is not preloaded (LD_PRELOAD of scripts/malloc-counter.c)")
        return 1
    }
    var failures = 0
    /// Allocation calls during 100 calls of `body`, after three warm-up calls (the
    /// first parallel call starts the pool's helpers; the first call on a thread sizes
    /// its scratch): on this thread, and in the whole process (the helpers included;
    /// nothing else runs here).
    func count(_ name: String, threads: Int, expectNone: Bool = true, _ body: () throws -> Void) {
        do {
            let (thread, total) = try Parallelism.withThreadCount(threads) { () throws -> (Int, Int) in
                for _ in 0..<3 { try body() }
                let t0 = threadCount(), a0 = totalCount()
                for _ in 0..<100 { try body() }
                return (threadCount() - t0, totalCount() - a0)
            }
            let ok = expectNone ? (thread == 0 && total == 0) : thread >= 100
            print("  \(ok ? "ok    " : "FAILED") \(name), \(threads) thread(s): \(thread) allocations on the caller's thread, \(total) in the process per 100 calls")
            if !ok { failures += 1 }
        } catch {
            print("  FAILED \(name): threw \(error)")
            failures += 1
        }
    }
    do {
        for shape in [[1, 768], [1024, 768]] {
            var ln = try LayerNorm(dim: 768)
            ln.weight = Tensor.randomNormal([768], mean: 1, seed: 1)
            ln.bias = Tensor.randomNormal([768], seed: 2)
            var rms = try RMSNorm(dim: 768)
            rms.weight = Tensor.randomNormal([768], mean: 1, seed: 1)
            let x = Tensor.randomNormal(shape, seed: 3), dy = Tensor.randomNormal(shape, seed: 5)
            var y = Tensor.zeros(shape), h = Tensor.randomNormal(shape, seed: 4)
            let raw = x.scalars
            var rawOut = [Float](repeating: 0, count: x.scalarCount), rawH = h.scalars
            let halfX = HalfTensor<BFloat16>(rounding: x).elements
            var halfH = HalfTensor<BFloat16>(rounding: h).elements, halfOut = halfX
            let (_, statistics) = try ln.forwardForTraining(x)
            var g = try ln.zeroGradients(inputShape: shape)
            let (_, rmsStatistics) = try rms.forwardForTraining(x)
            var rmsG = try rms.zeroGradients(inputShape: shape)
            for threads in [1, 2] {
                let at = "\(shape)"
                count("LayerNorm.forward(_:into:) \(at)", threads: threads) { try ln.forward(x, into: &y) }
                count("RMSNorm.forward(_:into:) \(at)", threads: threads) { try rms.forward(x, into: &y) }
                count("LayerNorm.forward(_:addingTo:into:) \(at)", threads: threads) { try ln.forward(x, addingTo: &h, into: &y) }
                count("RMSNorm.forward(_:addingTo:into:) \(at)", threads: threads) { try rms.forward(x, addingTo: &h, into: &y) }
                // The float raw-buffer forms, plain and fused, of both norms.
                for (name, norm) in [("LayerNorm", ln as any RowNormalization), ("RMSNorm", rms)] {
                    count("\(name).forward(buffers) \(at)", threads: threads) {
                        try raw.withUnsafeBufferPointer { xp in
                            try rawOut.withUnsafeMutableBufferPointer { yp in try norm.forward(xp, into: yp) }
                        }
                    }
                    count("\(name).forward(buffers, addingTo:into:) \(at)", threads: threads) {
                        try raw.withUnsafeBufferPointer { xp in
                            try rawH.withUnsafeMutableBufferPointer { hp in
                                try rawOut.withUnsafeMutableBufferPointer { yp in try norm.forward(xp, addingTo: hp, into: yp) }
                            }
                        }
                    }
                }
                // The half-precision raw-buffer forms (bf16), plain and fused, and RMSNorm's
                // Hugging Face rounding (RMSNorm.halfRounding), which runs a unit scale.
                var llama = rms
                llama.halfRounding = .huggingFaceLlama
                for (name, norm) in [("LayerNorm", ln as any RowNormalization), ("RMSNorm", rms), ("RMSNorm .huggingFaceLlama", llama)] {
                    count("\(name).forward(bf16 buffers) \(at)", threads: threads) {
                        try halfX.withUnsafeBufferPointer { xp in
                            try halfOut.withUnsafeMutableBufferPointer { yp in try norm.forward(xp, into: yp) }
                        }
                    }
                    count("\(name).forward(bf16 buffers, addingTo:into:) \(at)", threads: threads) {
                        try halfX.withUnsafeBufferPointer { xp in
                            try halfH.withUnsafeMutableBufferPointer { hp in
                                try halfOut.withUnsafeMutableBufferPointer { yp in try norm.forward(xp, addingTo: hp, into: yp) }
                            }
                        }
                    }
                }
                count("LayerNorm.backward(into:) \(at)", threads: threads) {
                    try ln.backward(outputGradient: dy, input: x, statistics: statistics, into: &g)
                }
                count("LayerNorm.backward(accumulatingInto:) \(at)", threads: threads) {
                    try ln.backward(outputGradient: dy, input: x, statistics: statistics, accumulatingInto: &g)
                }
                count("RMSNorm.backward(into:) \(at)", threads: threads) {
                    try rms.backward(outputGradient: dy, input: x, statistics: rmsStatistics, into: &rmsG)
                }
                count("RMSNorm.backward(accumulatingInto:) \(at)", threads: threads) {
                    try rms.backward(outputGradient: dy, input: x, statistics: rmsStatistics, accumulatingInto: &rmsG)
                }
            }
        }
        // The positive control, and the documented condition: an output whose storage
        // another value shares is copied on write, so every call allocates.
        let ln = try LayerNorm(dim: 768)
        let x = Tensor.randomNormal([1, 768], seed: 3)
        var y = Tensor.zeros([1, 768])
        count("control: forward(_:into:) into shared storage copies", threads: 1, expectNone: false) {
            let keep = y
            try ln.forward(x, into: &y)
            withExtendedLifetime(keep) {}
        }
    } catch {
        print("leak-check: FAILED: setting up the allocation check threw \(error)")
        return 1
    }
    print("leak-check: allocation check \(failures == 0 ? "passed" : "FAILED: \(failures) call(s) allocated")")
    return failures == 0 ? 0 : 1
}
