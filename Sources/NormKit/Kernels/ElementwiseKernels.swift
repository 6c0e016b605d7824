// Element-wise passes of RMSNorm and of the fused residual add, on SIMD16<Float> over
// raw pointers (see SIMDKernels for the conventions: unaligned, scalar tails that
// compute exactly what the vector body does, no fused multiply-add).
//
// Every loop reads element i before writing element i and touches no other index, so
// an output may be the very same memory as an input (in place).

enum ElementwiseKernels {
    typealias V = SIMD16<Float>

    /// y = (x·r)·(offset + w).
    @inline(__always)
    static func scaleWeighted(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int,
        _ r: Float, _ w: UnsafePointer<Float>, _ offset: Float
    ) {
        let rv = V(repeating: r), ov = V(repeating: offset)
        var i = 0
        while i &+ 16 <= n {
            SIMDKernels.store((SIMDKernels.load(x + i) * rv) * (ov + SIMDKernels.load(w + i)), y + i)
            i &+= 16
        }
        while i < n {
            y[i] = (x[i] * r) * (offset + w[i])
            i &+= 1
        }
    }

    /// sum = a + b, each element the float sum `+` gives.
    @inline(__always)
    static func add(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ sum: UnsafeMutablePointer<Float>, _ n: Int) {
        var i = 0
        while i &+ 16 <= n {
            SIMDKernels.store(SIMDKernels.load(a + i) + SIMDKernels.load(b + i), sum + i)
            i &+= 16
        }
        while i < n {
            sum[i] = a[i] + b[i]
            i &+= 1
        }
    }
}
