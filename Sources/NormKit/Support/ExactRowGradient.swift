// The input gradient of one LayerNorm or RMSNorm row, computed so that eps is never
// lost under a cancellation: the one definition the float64 reference (NormKitTesting's
// `Reference`) and the backward kernels' exact fallbacks share. docs/numerics.md,
// "Backward" ("Where g lies in the span: the eps term"), has the derivation.
//
// LayerNorm, with d = x - mean, D = Σd², G = g - mean(g), S = Σ G·d, k = S/D:
//
//     t = g - mean(g) - x̂·mean(g·x̂) = h + d·k·f,   h = G - d·k,   f = n·eps / (D + n·eps)
//
// h is G minus its projection onto span(1, x̂), computed in double-double; d·k·f is
// the eps term, a product with no cancellation. RMSNorm is the same with d = x, G = g
// and the projection onto x alone. When the projection removes all of G (n = 2 with
// D > 0 for LayerNorm, n = 1 for RMSNorm), h is 0 exactly. dx = r·t with
// r = 1/sqrt(D/n + eps).

/// A double-double value hi + lo (|lo| at most half an ulp of hi): about 106 bits.
package struct DoubleDouble: Sendable {
    package var hi: Double
    package var lo: Double

    @inline(__always) package init(_ hi: Double, _ lo: Double = 0) {
        self.hi = hi
        self.lo = lo
    }

    /// a + b exactly, as hi + lo (Knuth's TwoSum).
    @inline(__always) static func twoSum(_ a: Double, _ b: Double) -> DoubleDouble {
        let s = a + b
        let bb = s - a
        return DoubleDouble(s, (a - (s - bb)) + (b - bb))
    }

    /// a + b for |a| >= |b| (or a = 0), as hi + lo.
    @inline(__always) static func quickTwoSum(_ a: Double, _ b: Double) -> DoubleDouble {
        let s = a + b
        return DoubleDouble(s, b - (s - a))
    }

    /// a·b exactly (barring underflow), as hi + lo: the fused multiply-add gives the error.
    @inline(__always) static func twoProduct(_ a: Double, _ b: Double) -> DoubleDouble {
        let p = a * b
        return DoubleDouble(p, (-p).addingProduct(a, b))
    }

    @inline(__always) static func + (a: DoubleDouble, b: DoubleDouble) -> DoubleDouble {
        let s = twoSum(a.hi, b.hi)
        let t = twoSum(a.lo, b.lo)
        var r = quickTwoSum(s.hi, s.lo + t.hi)
        r = quickTwoSum(r.hi, r.lo + t.lo)
        return r
    }

    @inline(__always) static prefix func - (a: DoubleDouble) -> DoubleDouble { DoubleDouble(-a.hi, -a.lo) }

    @inline(__always) static func - (a: DoubleDouble, b: DoubleDouble) -> DoubleDouble { a + (-b) }

    @inline(__always) static func * (a: DoubleDouble, b: DoubleDouble) -> DoubleDouble {
        let p = twoProduct(a.hi, b.hi)
        return quickTwoSum(p.hi, p.lo + (a.hi * b.lo + a.lo * b.hi))
    }

    @inline(__always) static func / (a: DoubleDouble, b: DoubleDouble) -> DoubleDouble {
        let q1 = a.hi / b.hi
        let r1 = a - b * DoubleDouble(q1)
        let q2 = r1.hi / b.hi
        let r2 = r1 - b * DoubleDouble(q2)
        let q3 = r2.hi / b.hi
        return quickTwoSum(q1, q2) + DoubleDouble(q3)
    }

    package var value: Double { hi + lo }

    /// dy·(offset + w) for floats dy, w and offset, to about 106 bits.
    @inline(__always) package static func gradient(_ dy: Float, _ w: Float, offset: Float = 0) -> DoubleDouble {
        let ow = twoSum(Double(offset), Double(w))
        let p = twoProduct(Double(dy), ow.hi)
        return quickTwoSum(p.hi, p.lo + Double(dy) * ow.lo)
    }
}

/// The LayerNorm input gradient of one row (see the file comment), from the row's
/// values `x`, `g = dy·w` (`DoubleDouble.gradient`) and `eps`, with the
/// statistics recomputed from x. Calls `write(i, dx_i, xhat_i)` for each element.
/// A row holding NaN or infinity gives NaN.
@inline(__always)
package func exactLayerNormRowGradient(
    count n: Int, eps: Double, x: (Int) -> Double, g: (Int) -> DoubleDouble, write: (Int, Double, Double) -> Void
) {
    let nd = Double(n)
    var sx = DoubleDouble(0), sg = DoubleDouble(0)
    for i in 0..<n {
        sx = sx + DoubleDouble(x(i))
        sg = sg + g(i)
    }
    let mean = sx / DoubleDouble(nd), a = sg / DoubleDouble(nd)
    var squares = DoubleDouble(0), s = DoubleDouble(0)
    for i in 0..<n {
        let d = DoubleDouble(x(i)) - mean
        squares = squares + d * d
        s = s + (g(i) - a) * d
    }
    let dd = squares.value
    let r = 1 / (dd / nd + eps).squareRoot()
    // A constant row has x̂ = 0: t = G, nothing to project onto x̂.
    let k = dd > 0 ? s / squares : DoubleDouble(0)
    let f = nd * eps / (dd + nd * eps)
    let projectionIsAll = n <= 2 && dd > 0
    for i in 0..<n {
        let d = DoubleDouble(x(i)) - mean
        let h = projectionIsAll ? 0 : ((g(i) - a) - d * k).value
        let t = h + d.value * k.value * f
        write(i, r * t, d.value * r)
    }
}

/// The RMSNorm input gradient of one row (see the file comment), from `x`,
/// `g = dy·(offset + w)` (`DoubleDouble.gradient`) and `eps`, with r recomputed from x. Calls `write(i, dx_i, r)`
/// for each element. A row holding NaN or infinity gives NaN.
@inline(__always)
package func exactRMSRowGradient(
    count n: Int, eps: Double, x: (Int) -> Double, g: (Int) -> DoubleDouble, write: (Int, Double, Double) -> Void
) {
    let nd = Double(n)
    var squares = DoubleDouble(0), s = DoubleDouble(0)
    for i in 0..<n {
        squares = squares + DoubleDouble.twoProduct(x(i), x(i))
        s = s + g(i) * DoubleDouble(x(i))
    }
    let q = squares.value
    let r = 1 / (q / nd + eps).squareRoot()
    let k = q > 0 ? s / squares : DoubleDouble(0)
    let f = nd * eps / (q + nd * eps)
    for i in 0..<n {
        let h = n == 1 && q > 0 ? 0 : (g(i) - DoubleDouble(x(i)) * k).value
        write(i, r * (h + x(i) * k.value * f), r)
    }
}
