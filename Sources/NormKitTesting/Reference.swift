import NormKit

/// Naive, obviously correct implementations to test against.
///
/// Everything here is scalar loops in `Double`: slow, simple, and exact to far
/// better than float precision for any float input (a float's square and any sum of
/// a few thousand of them fit a double with room to spare). NormKit's own tests use
/// these; they are public (in the `NormKitTesting` product) so downstream projects can
/// test against them too.
public enum Reference {
    /// LayerNorm over the last axis, computed in `Double` and returned unrounded.
    ///
    /// Two passes with compensated sums (`Reference.statistics(_:eps:)`): the mean, then the
    /// biased variance of the centred values. Nothing here calls NormKit's own
    /// statistics, so the tests compare NormKit with an independent computation.
    ///
    /// - Parameters:
    ///   - input: any rank >= 1; rows are the last axis.
    ///   - weight: `[dim]`, or `nil` for ones.
    ///   - bias: `[dim]`, or `nil` for zeros.
    ///   - eps: added to the variance.
    /// - Returns: the row-major results, one `Double` per input element.
    /// - Throws: `NormKitError` when weight or bias is not `[dim]`.
    public static func layerNormDouble(
        _ input: Tensor, weight: Tensor? = nil, bias: Tensor? = nil, eps: Float = 1e-5
    ) throws(NormKitError) -> [Double] {
        let dim = input.shape[input.shape.count - 1]
        if let weight, weight.shape != [dim] {
            throw .parameterShapeMismatch(name: "weight", expected: [dim], actual: weight.shape)
        }
        if let bias, bias.shape != [dim] {
            throw .parameterShapeMismatch(name: "bias", expected: [dim], actual: bias.shape)
        }
        let x = input.scalars
        let w = weight?.scalars ?? [Float](repeating: 1, count: dim)
        let b = bias?.scalars ?? [Float](repeating: 0, count: dim)
        var out = [Double](repeating: 0, count: x.count)
        guard dim > 0 else { return out }
        let rows = x.count / dim
        for r in 0..<rows {
            let start = r * dim
            let (mean, rstd) = statistics(x[start..<(start + dim)].map(Double.init)[...], eps: Double(eps))
            for i in 0..<dim {
                out[start + i] = (Double(x[start + i]) - mean) * rstd * Double(w[i]) + Double(b[i])
            }
        }
        return out
    }

    /// LayerNorm over the last axis, computed in `Double` and rounded to `Float`.
    /// See ``layerNormDouble(_:weight:bias:eps:)``.
    public static func layerNorm(
        _ input: Tensor, weight: Tensor? = nil, bias: Tensor? = nil, eps: Float = 1e-5
    ) throws(NormKitError) -> Tensor {
        let values = try layerNormDouble(input, weight: weight, bias: bias, eps: eps)
        return try Tensor(shape: input.shape, scalars: values.map { Float($0) })
    }

    /// The accuracy measure NormKit is held to: for each row, the largest
    /// `|actual - expected|` divided by `max(1, max |expected|)` over the row; the
    /// largest of those over all rows. A NaN in `actual` where `expected` is finite
    /// counts as infinite error; NaN where `expected` is NaN counts as none.
    ///
    /// - Parameters:
    ///   - actual: the tensor under test.
    ///   - expected: row-major expected values, `actual.scalarCount` of them.
    public static func maxRowError(_ actual: Tensor, expected: [Double]) -> Double {
        guard let dim = actual.shape.last, dim > 0, expected.count == actual.scalarCount else {
            return expected.count == actual.scalarCount ? 0 : .infinity
        }
        let a = actual.scalars
        var worst = 0.0
        for r in 0..<(a.count / dim) {
            var scale = 1.0
            for i in 0..<dim where expected[r * dim + i].isFinite {
                scale = max(scale, abs(expected[r * dim + i]))
            }
            for i in 0..<dim {
                let e = expected[r * dim + i], v = Double(a[r * dim + i])
                if e.isNaN && v.isNaN { continue }
                let err = e == v ? 0 : abs(v - e) / scale
                worst = max(worst, err.isNaN ? .infinity : err)
            }
        }
        return worst
    }
}
