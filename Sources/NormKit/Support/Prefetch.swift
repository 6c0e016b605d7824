// Software prefetch through the C boundary (Modules/COpenBLAS/normkit_prefetch.h).
// Where that module is not used (Apple platforms, with Accelerate) it is a no-op.

#if canImport(COpenBLAS) && !canImport(Accelerate)
import COpenBLAS
#endif

enum Prefetch {
    /// Asks the CPU to bring the cache line holding `address` into L2. Never faults,
    /// so an address past the end of a buffer is harmless; callers still avoid it.
    @inline(__always)
    static func line(_ address: UnsafeRawPointer) {
        #if canImport(COpenBLAS) && !canImport(Accelerate)
        normkit_prefetch(address)
        #endif
    }
}
