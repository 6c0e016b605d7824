import NormKit

extension Reference {
    /// RMSNorm over the last axis, naive and in `Double`, returned unrounded:
    /// `y = x / sqrt(mean(x²) + eps) · (weightOffset + weight)` per row.
    ///
    /// A float's square and a sum of any number of them fit a Double, so no scaling is
    /// needed. A row holding NaN or infinity comes out all NaN (as NormKit defines it).
    ///
    /// - Parameters:
    ///   - input: any rank >= 1; rows are the last axis.
    ///   - weight: `[dim]`, or `nil` for ones.
    ///   - eps: added to the mean square.
    ///   - weightOffset: added to every weight (1 for Gemma).
    /// - Throws: `NormKitError` when `weight` is not `[dim]`.
    public static func rmsNormDouble(
        _ input: Tensor, weight: Tensor? = nil, eps: Float = 1e-6, weightOffset: Float = 0
    ) throws(NormKitError) -> [Double] {
        let dim = input.shape[input.shape.count - 1]
        let w = try rmsWeight(weight, dim: dim, offset: weightOffset)
        let x = input.scalars.map(Double.init)
        var out = [Double](repeating: 0, count: x.count)
        guard dim > 0 else { return out }
        for r in 0..<(x.count / dim) {
            let row = (r * dim)..<((r + 1) * dim)
            let rrms = rmsStatistic(x[row], eps: Double(eps))
            for i in row { out[i] = x[i] * rrms * w[i - row.lowerBound] }
        }
        return out
    }

    /// RMSNorm gradients computed in `Double`, unrounded.
    public struct RMSNormGradients: Sendable, Equatable {
        /// ∂loss/∂input, row-major, one value per input element.
        public var input: [Double]
        /// ∂loss/∂weight, `dim` values.
        public var weight: [Double]
    }

    /// RMSNorm backward over the last axis, in `Double`. Per row, with
    /// r = 1/sqrt(mean(x²) + eps), x̂ = x·r and g = dy·(weightOffset + w):
    ///
    ///     dx = r·(g - x̂·mean(g·x̂)),   dweight += dy·x̂
    ///
    /// dx is evaluated as NormKit's exact fallback does (`exactRMSRowGradient`): the
    /// projection of g onto x in double-double and the eps term, which the formula above
    /// buries under a cancellation when g is parallel to x (always at dim 1), apart.
    ///
    /// - Throws: `NormKitError` when `outputGradient`'s shape is not `input`'s or
    ///   `weight` is not `[dim]`.
    public static func rmsNormBackwardDouble(
        outputGradient: Tensor, input: Tensor, weight: Tensor? = nil, eps: Float = 1e-6, weightOffset: Float = 0
    ) throws(NormKitError) -> RMSNormGradients {
        guard outputGradient.shape == input.shape else {
            throw .shapeMismatch(name: "outputGradient", expected: input.shape, actual: outputGradient.shape)
        }
        let dim = input.shape[input.shape.count - 1]
        _ = try rmsWeight(weight, dim: dim, offset: weightOffset)
        let x = input.scalars.map(Double.init)
        let dy = outputGradient.scalars.map(Double.init)
        let dys = outputGradient.scalars
        let ws = weight?.scalars ?? [Float](repeating: 1, count: dim)
        var result = RMSNormGradients(input: [Double](repeating: 0, count: x.count),
                                      weight: [Double](repeating: 0, count: dim))
        guard dim > 0 else { return result }
        for r in 0..<(x.count / dim) {
            let row = (r * dim)..<((r + 1) * dim)
            let start = row.lowerBound
            guard x[row].allSatisfy(\.isFinite) else {
                for i in row { result.input[i] = .nan; result.weight[i - start] = .nan }
                continue
            }
            exactRMSRowGradient(count: dim, eps: Double(eps), x: { x[start + $0] },
                                g: { DoubleDouble.gradient(dys[start + $0], ws[$0], offset: weightOffset) }) { j, dx, rrms in
                result.input[start + j] = dx
                result.weight[j] += dy[start + j] * (x[start + j] * rrms)
            }
        }
        return result
    }

    /// `1/sqrt(mean(x²) + eps)` of a row, in Double; NaN when the row is not all finite.
    static func rmsStatistic(_ row: ArraySlice<Double>, eps: Double) -> Double {
        guard row.allSatisfy(\.isFinite) else { return .nan }
        let meanSquare = compensatedSum(row.lazy.map { $0 * $0 }) / Double(row.count)
        return 1 / (meanSquare + eps).squareRoot()
    }

    /// The effective scale `offset + weight` in Double (ones plus offset for `nil`).
    static func rmsWeight(_ weight: Tensor?, dim: Int, offset: Float) throws(NormKitError) -> [Double] {
        if let weight, weight.shape != [dim] {
            throw .parameterShapeMismatch(name: "weight", expected: [dim], actual: weight.shape)
        }
        let w = weight?.scalars ?? [Float](repeating: 1, count: dim)
        return w.map { Double(offset) + Double($0) }
    }
}
