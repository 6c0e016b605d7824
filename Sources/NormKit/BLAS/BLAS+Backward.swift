// BLAS calls the backward pass needs beyond BLAS.swift's: a dot product of float
// vectors returned in Double (`cblas_dsdot`).
//
// Backward's two row reductions (Σ dy·w and Σ dy·w·x̂) feed a subtraction that can
// cancel, and the kernel checks each row's rounding against a bound, which needs a
// bound on the dot product's own error. The BLAS standard has dsdot accumulate in
// double; OpenBLAS 0.3.21's x86-64 kernel (COOPERLAKE on this machine) rounds each
// product to float and adds blocks of 32 in float before adding the blocks in
// double, which is still at most ~7u per term, against ~(n/64 + 6)u for its sdot
// (4 AVX-512 accumulators over the whole row). The kernel's bound assumes 8u.

#if canImport(Accelerate)
import Accelerate
#else
import COpenBLAS
#endif

extension BLAS {
    /// Σ x[i]·y[i] over `count` contiguous floats as a `Double` (`cblas_dsdot`; see
    /// the file comment for its accuracy), chunked like ``dot(_:_:_:)`` so OpenBLAS
    /// never threads.
    @inline(__always)
    static func dotDouble(_ count: Int, _ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>) -> Double {
        ProcessExit.checkpoint()  // not into OpenBLAS once exit() began (Support/ProcessExit.swift)
        if count <= maxChunk {
            return cblas_dsdot(Int32(truncatingIfNeeded: count), x, 1, y, 1)
        }
        var sum = 0.0
        var start = 0
        while start < count {
            let n = min(maxChunk, count - start)
            sum += cblas_dsdot(Int32(truncatingIfNeeded: n), x + start, 1, y + start, 1)
            start += n
        }
        return sum
    }
}
