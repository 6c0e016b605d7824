// BLAS calls the backward pass needs beyond BLAS.swift's: a dot product of float
// vectors accumulated in Double (`cblas_dsdot`).
//
// Backward's two row reductions (Σ dy·w and Σ dy·w·x̂) feed a subtraction that can
// cancel, and the kernel checks each row's rounding against a bound. With `dsdot`
// the products are exact in Double and the sum's error is ~n·2^-53 relative, so that
// bound does not have to guess how OpenBLAS orders a float sum.

#if canImport(Accelerate)
import Accelerate
#else
import COpenBLAS
#endif

extension BLAS {
    /// Σ x[i]·y[i] over `count` contiguous floats, products and sum in `Double`
    /// (`cblas_dsdot`), chunked like ``dot(_:_:_:)`` so OpenBLAS never threads.
    @inline(__always)
    static func dotDouble(_ count: Int, _ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>) -> Double {
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
