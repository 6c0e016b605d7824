// Element-wise helpers for Swift code outside the kernel layer's own kernels.

enum SIMDKernels {
    /// y = x·s, by the kernel layer at the level in force.
    static func scale(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int, _ s: Float) {
        Kernels.layerNorm.scale(x, y, n, s)
    }
}
