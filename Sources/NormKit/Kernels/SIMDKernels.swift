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
            // Compare-and-blend, not pointwiseMin/Max: those compile to a per-lane
            // loop through the stack here (about 30x slower). Same result: a NaN lane
            // keeps the old value, as Swift.min/max do (and `bad` flags the row anyway).
            lo = lo.replacing(with: v, where: v .< lo)
            hi = hi.replacing(with: v, where: v .> hi)
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

    /// Four consecutive rows of `n` floats at once: row k of y = ((row k of x - shift[k])·scale[k])·w + b.
    ///
    /// The same operations per element as ``affine(_:_:_:shift:scale:_:_:)``, so the
    /// same bits; w and b are loaded once for the four rows. Eight lanes per row keep
    /// the four rows' vectors, w, b and the constants within the 16 SSE registers.
    @inline(__always)
    static func affine4(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int,
        shift: SIMD4<Float>, scale: SIMD4<Float>, _ w: UnsafePointer<Float>, _ b: UnsafePointer<Float>
    ) {
        typealias V8 = SIMD8<Float>
        @inline(__always) func load8(_ p: UnsafePointer<Float>) -> V8 { UnsafeRawPointer(p).loadUnaligned(as: V8.self) }
        @inline(__always) func store8(_ v: V8, _ p: UnsafeMutablePointer<Float>) {
            UnsafeMutableRawPointer(p).storeBytes(of: v, as: V8.self)
        }
        let m0 = V8(repeating: shift[0]), m1 = V8(repeating: shift[1])
        let m2 = V8(repeating: shift[2]), m3 = V8(repeating: shift[3])
        let r0 = V8(repeating: scale[0]), r1 = V8(repeating: scale[1])
        let r2 = V8(repeating: scale[2]), r3 = V8(repeating: scale[3])
        let x1 = x + n, x2 = x1 + n, x3 = x2 + n
        let y1 = y + n, y2 = y1 + n, y3 = y2 + n
        var i = 0
        while i &+ 8 <= n {
            let wv = load8(w + i), bv = load8(b + i)
            store8(((load8(x + i) - m0) * r0) * wv + bv, y + i)
            store8(((load8(x1 + i) - m1) * r1) * wv + bv, y1 + i)
            store8(((load8(x2 + i) - m2) * r2) * wv + bv, y2 + i)
            store8(((load8(x3 + i) - m3) * r3) * wv + bv, y3 + i)
            i &+= 8
        }
        while i < n {
            let wi = w[i], bi = b[i]
            y[i] = ((x[i] - shift[0]) * scale[0]) * wi + bi
            y1[i] = ((x1[i] - shift[1]) * scale[1]) * wi + bi
            y2[i] = ((x2[i] - shift[2]) * scale[2]) * wi + bi
            y3[i] = ((x3[i] - shift[3]) * scale[3]) * wi + bi
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
