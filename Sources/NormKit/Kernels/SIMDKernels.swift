// Element-wise loops BLAS has no call for, written with SIMD16<Float> over raw
// pointers: no bounds checks, no allocation, unaligned loads and stores (rows of an
// odd `dim` start anywhere). Each loop has a scalar tail for n mod 16 elements that
// computes exactly what the vector body does, so a value does not depend on where in
// the row it sits.
//
// No fused multiply-add: on the baseline x86-64 target Swift compiles for, a vector
// FMA would become a libm call per lane. Multiplies and adds round separately.

enum SIMDKernels {
    typealias V = SIMD16<Float>
    static let width = 16

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> V {
        UnsafeRawPointer(p).loadUnaligned(as: V.self)
    }

    @inline(__always)
    static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
    }

    /// The row's minimum and maximum, and whether every element is finite.
    /// (x - x is 0 for a finite x and NaN for ±inf or NaN; the sum of those is NaN
    /// exactly when some element is not finite.)
    static func range(_ x: UnsafePointer<Float>, _ n: Int) -> (min: Float, max: Float, finite: Bool) {
        var lo = V(repeating: .infinity), hi = V(repeating: -.infinity), bad = V()
        var i = 0
        while i &+ width <= n {
            let v = load(x + i)
            lo = pointwiseMin(lo, v)
            hi = pointwiseMax(hi, v)
            bad += v - v
            i &+= width
        }
        var mn = lo.min(), mx = hi.max(), b = bad.sum()
        while i < n {
            let v = x[i]
            mn = Swift.min(mn, v)
            mx = Swift.max(mx, v)
            b += v - v
            i &+= 1
        }
        return (mn, mx, b == 0)
    }

    /// y = x·s.
    static func scale(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int, _ s: Float) {
        let sv = V(repeating: s)
        var i = 0
        while i &+ width <= n {
            store(load(x + i) * sv, y + i)
            i &+= width
        }
        while i < n {
            y[i] = x[i] * s
            i &+= 1
        }
    }

    /// y = ((x - shift)·scale)·w + b.
    @inline(__always)
    static func affine(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int,
        shift: Float, scale: Float, _ w: UnsafePointer<Float>, _ b: UnsafePointer<Float>
    ) {
        let m = V(repeating: shift), r = V(repeating: scale)
        var i = 0
        while i &+ width <= n {
            let t = (load(x + i) - m) * r
            store(t * load(w + i) + load(b + i), y + i)
            i &+= width
        }
        while i < n {
            y[i] = ((x[i] - shift) * scale) * w[i] + b[i]
            i &+= 1
        }
    }

    /// y = ((y - shift)·scale)·w + b, in place.
    static func affineInPlace(
        _ y: UnsafeMutablePointer<Float>, _ n: Int,
        shift: Float, scale: Float, _ w: UnsafePointer<Float>, _ b: UnsafePointer<Float>
    ) {
        affine(UnsafePointer(y), y, n, shift: shift, scale: scale, w, b)
    }
}
