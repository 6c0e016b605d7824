// The one place NormKit calls BLAS.
//
// Every kernel goes through `BLAS`, so swapping the implementation (OpenBLAS on
// Linux, Accelerate on Apple platforms) is this one file. Three rules hold here:
//
// * OpenBLAS never starts its own threads inside our calls. Its level-1 routines
//   (sdot, saxpy) go multi-threaded only above n = 10 000 in 0.3.x; we split every
//   call into chunks of `maxChunk` elements, so they always run on the caller's
//   thread. NormKit splits rows across cores itself.
// * Lengths fit the 32-bit `blasint` of an LP64 OpenBLAS: the same chunking makes a
//   vector of 2^31 or more elements safe.
// * Sums stay accurate on long rows: reductions go in blocks (`sumBlock`), added in
//   Double.

#if canImport(Accelerate)
import Accelerate
#else
import COpenBLAS
#endif

enum BLAS {
    /// The longest vector handed to one BLAS call: under OpenBLAS's threading
    /// threshold (10 000) and far under `Int32.max`.
    static let maxChunk = 8192

    /// Rows up to this long are reduced by a single `cblas_sdot`; longer ones in
    /// blocks of `sumBlock` whose results are added in Double.
    static let singleCallLimit = 1024
    /// The block length of a blocked sum: `cblas_sdot` accumulates in float, so a long
    /// sum is taken in blocks whose results are added in Double (docs/numerics.md,
    /// "Blocked sums", has why 512). The norms use these sums only as shifts.
    static let sumBlock = 512

    /// Σ x[i]·y[i] over `count` contiguous floats, by `cblas_sdot` (see `sumBlock`).
    @inline(__always)
    static func dot(_ count: Int, _ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>) -> Double {
        blockedDot(count, x, y, advanceY: true)
    }

    /// Σ x[i]·c[i mod sumBlock] where `c` is a constant vector of at least
    /// `min(count, singleCallLimit)` elements (a ones vector gives Σ x[i]).
    @inline(__always)
    static func dotRepeating(_ count: Int, _ x: UnsafePointer<Float>, _ c: UnsafePointer<Float>) -> Double {
        blockedDot(count, x, c, advanceY: false)
    }

    @inline(__always)
    private static func blockedDot(
        _ count: Int, _ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, advanceY: Bool
    ) -> Double {
        ProcessExit.checkpoint()  // not into OpenBLAS once exit() began (Support/ProcessExit.swift)
        if count <= singleCallLimit {
            return Double(cblas_sdot(Int32(truncatingIfNeeded: count), x, 1, y, 1))
        }
        var sum = 0.0
        var start = 0
        while start < count {
            let n = min(sumBlock, count - start)
            sum += Double(cblas_sdot(Int32(truncatingIfNeeded: n), x + start, 1, advanceY ? y + start : y, 1))
            start += n
        }
        return sum
    }

    /// y[i] += alpha·x[i] (`cblas_saxpy`).
    @inline(__always)
    static func axpy(_ count: Int, _ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        ProcessExit.checkpoint()  // not into OpenBLAS once exit() began (Support/ProcessExit.swift)
        var start = 0
        while start < count {
            let n = min(maxChunk, count - start)
            cblas_saxpy(Int32(truncatingIfNeeded: n), alpha, x + start, 1, y + start, 1)
            start += n
        }
    }

    /// The name of the BLAS kernel set in use: OpenBLAS's core name (`Haswell`,
    /// `SkylakeX`, `Prescott`, ..., which `OPENBLAS_CORETYPE` selects in a dynamic-arch
    /// build), or `Accelerate` on Apple platforms. Results are bitwise reproducible per
    /// instruction-set level *and* per BLAS kernel (docs: "Accuracy and reproducibility").
    package static var coreName: String {
        #if canImport(Accelerate)
        return "Accelerate"
        #else
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
        #endif
    }

    /// `maxChunk` ones, for sums written as dot products (`dotRepeating`).
    static let ones = [Float](repeating: 1, count: maxChunk)
}
