// The one element-wise loop still in Swift (backward's careful path scales a row by a
// power of two); every other loop is in the kernel layer (Sources/CNormKernels).

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
}
