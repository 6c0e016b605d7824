import NormKit

extension Reference {
    /// LayerNorm gradients computed in `Double`, unrounded: see
    /// ``layerNormBackwardDouble(outputGradient:input:weight:eps:)``.
    public struct LayerNormGradients: Sendable, Equatable {
        /// ∂loss/∂input, row-major, one value per input element.
        public var input: [Double]
        /// ∂loss/∂weight, `dim` values.
        public var weight: [Double]
        /// ∂loss/∂bias, `dim` values.
        public var bias: [Double]
    }

    /// LayerNorm backward over the last axis, in `Double`.
    ///
    /// Per row, with x̂ = (x - mean)·rstd and g = dy·w:
    ///
    ///     dx = rstd·(g - mean(g) - x̂·mean(g·x̂))
    ///     dweight += dy·x̂,   dbias += dy
    ///
    /// dx is evaluated as NormKit's exact fallback does (`exactLayerNormRowGradient`):
    /// the statistics and the projection of g onto span(1, x̂) in double-double, and the
    /// eps term, which the formula above buries under a cancellation when g lies in that
    /// span (always at dim 2), apart (docs/numerics.md, "Backward").
    ///
    /// The weight and bias gradients are those of a layer that applies them, whether or
    /// not `weight` is given (`nil` means ones).
    ///
    /// - Throws: `NormKitError` when `outputGradient`'s shape is not `input`'s or
    ///   `weight` is not `[dim]`.
    public static func layerNormBackwardDouble(
        outputGradient: Tensor, input: Tensor, weight: Tensor? = nil, eps: Float = 1e-5
    ) throws(NormKitError) -> LayerNormGradients {
        guard outputGradient.shape == input.shape else {
            throw .shapeMismatch(name: "outputGradient", expected: input.shape, actual: outputGradient.shape)
        }
        let dim = input.shape[input.shape.count - 1]
        if let weight, weight.shape != [dim] {
            throw .parameterShapeMismatch(name: "weight", expected: [dim], actual: weight.shape)
        }
        let x = input.scalars.map(Double.init)
        let dy = outputGradient.scalars.map(Double.init)
        let dys = outputGradient.scalars
        let ws = weight?.scalars ?? [Float](repeating: 1, count: dim)
        var result = LayerNormGradients(
            input: [Double](repeating: 0, count: x.count),
            weight: [Double](repeating: 0, count: dim), bias: [Double](repeating: 0, count: dim))
        guard dim > 0 else { return result }
        for r in 0..<(x.count / dim) {
            let start = r * dim
            exactLayerNormRowGradient(count: dim, eps: Double(eps), x: { x[start + $0] },
                                      g: { DoubleDouble.gradient(dys[start + $0], ws[$0]) }) { j, dx, xhat in
                result.input[start + j] = dx
                result.weight[j] += dy[start + j] * xhat
                result.bias[j] += dy[start + j]
            }
        }
        return result
    }

    /// LayerNorm forward of `Double` values (rows of `dim`), entirely in `Double`: the
    /// function whose central finite differences the backward tests compare against.
    ///
    /// - Parameters:
    ///   - x: row-major values, a multiple of `dim` of them.
    ///   - dim: the row length.
    ///   - weight: `dim` values, or `nil` for ones.
    ///   - bias: `dim` values, or `nil` for zeros.
    ///   - eps: added to the variance.
    public static func layerNormDouble(
        _ x: [Double], dim: Int, weight: [Double]? = nil, bias: [Double]? = nil, eps: Double = 1e-5
    ) -> [Double] {
        var out = [Double](repeating: 0, count: x.count)
        guard dim > 0 else { return out }
        for r in 0..<(x.count / dim) {
            let row = (r * dim)..<((r + 1) * dim)
            let (mean, rstd) = statistics(x[row], eps: eps)
            for i in row {
                let j = i - row.lowerBound
                out[i] = (x[i] - mean) * rstd * (weight?[j] ?? 1) + (bias?[j] ?? 0)
            }
        }
        return out
    }

    /// A row's mean and `1/sqrt(var + eps)` in `Double`, independent of NormKit.
    ///
    /// Two passes, each a compensated (Neumaier) sum, whose error is at most about
    /// 2u·|sum| + n·u²·Σ|terms| (u = 2⁻⁵³) whatever the row's length or cancellation:
    /// the mean is `Σx/n`, the variance `Σ(x - mean)²/n` (an error δ in the mean adds
    /// only δ² to it). A float and its square fit a double exactly, so for float inputs
    /// both are good to ~1e-15 relative, 10^8 times finer than what the tests measure. A row holding NaN or infinity gives NaN for both (so every output of
    /// the row is NaN, as NormKit defines it).
    package static func statistics(_ row: ArraySlice<Double>, eps: Double) -> (mean: Double, rstd: Double) {
        guard !row.isEmpty else { return (0, 1 / eps.squareRoot()) }
        guard row.allSatisfy(\.isFinite) else { return (.nan, .nan) }
        let n = Double(row.count)
        let mean = compensatedSum(row) / n
        let variance = compensatedSum(row.lazy.map { ($0 - mean) * ($0 - mean) }) / n
        return (mean, 1 / (variance + eps).squareRoot())
    }

    /// Neumaier's compensated sum: the rounding error of every addition is gathered
    /// exactly (TwoSum) and added back at the end. Finite inputs only.
    package static func compensatedSum<S: Sequence>(_ values: S) -> Double where S.Element == Double {
        var sum = 0.0, compensation = 0.0
        for v in values {
            let t = sum + v
            compensation += abs(sum) >= abs(v) ? (sum - t) + v : (v - t) + sum
            sum = t
        }
        return sum + compensation
    }

    /// The accuracy measure for a whole tensor (a weight or bias gradient): the
    /// largest `|actual - expected|` divided by `max(1, max |expected|)` over all
    /// elements. NaN where `expected` is finite counts as infinite error; NaN where
    /// `expected` is NaN counts as none. A count mismatch is infinite error.
    public static func maxError(_ actual: Tensor, expected: [Double]) -> Double {
        guard expected.count == actual.scalarCount else { return .infinity }
        var scale = 1.0
        for e in expected where e.isFinite { scale = max(scale, abs(e)) }
        var worst = 0.0
        for (v, e) in zip(actual.scalars, expected) {
            if e.isNaN && v.isNaN { continue }
            let err = Double(v) == e ? 0 : abs(Double(v) - e) / scale
            worst = max(worst, err.isNaN ? .infinity : err)
        }
        return worst
    }
}
