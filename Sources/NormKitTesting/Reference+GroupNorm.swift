import NormKit

extension Reference {
    /// GroupNorm gradients computed in `Double`, unrounded.
    public struct GroupNormGradients: Sendable, Equatable {
        /// ∂loss/∂input, row-major, one value per input element.
        public var input: [Double]
        /// ∂loss/∂weight, `channels` values.
        public var weight: [Double]
        /// ∂loss/∂bias, `channels` values.
        public var bias: [Double]
    }

    /// GroupNorm over `[N, C, *spatial]` (channels first), computed in `Double` and
    /// returned unrounded. Each (sample, group) of `C / groups` channels is one group of
    /// values: mean, then the biased variance of the centred values (two passes, the
    /// mean with one correction step), then `(x - mean)·rstd·weight[c] + bias[c]`.
    /// Written independently of NormKit's kernels.
    ///
    /// - Parameters:
    ///   - input: `[N, C, *spatial]`, channels first.
    ///   - groups: the number of groups; must divide `C`.
    ///   - weight: `[C]`, or `nil` for ones.
    ///   - bias: `[C]`, or `nil` for zeros.
    ///   - eps: added to each group's variance.
    /// - Throws: `NormKitError` when the input is not rank >= 2, `groups` does not divide
    ///   `C`, or weight or bias is not `[C]`.
    public static func groupNormDouble(
        _ input: Tensor, groups: Int, weight: Tensor? = nil, bias: Tensor? = nil, eps: Float = 1e-5
    ) throws(NormKitError) -> [Double] {
        let (n, channels, spatial) = try groupShape(input.shape, groups: groups, weight: weight, bias: bias)
        let x = input.scalars.map(Double.init)
        let w = weight?.scalars.map(Double.init) ?? [Double](repeating: 1, count: channels)
        let b = bias?.scalars.map(Double.init) ?? [Double](repeating: 0, count: channels)
        var out = [Double](repeating: 0, count: x.count)
        let perGroup = channels / groups, length = perGroup * spatial
        for row in 0 ..< n * groups where length > 0 {
            let range = row * length ..< (row + 1) * length
            let (mean, rstd) = groupStatistics(x[range], eps: Double(eps))
            for i in range {
                let c = (row % groups) * perGroup + (i - range.lowerBound) / spatial
                out[i] = (x[i] - mean) * rstd * w[c] + b[c]
            }
        }
        return out
    }

    /// GroupNorm backward, naive and in `Double`: per (sample, group), with x̂ and the
    /// statistics as in ``groupNormDouble(_:groups:weight:bias:eps:)`` and g = dy·w[c],
    ///
    ///     dx = rstd·(g - mean(g) - x̂·mean(g·x̂)),   dweight[c] += dy·x̂,   dbias[c] += dy
    ///
    /// - Throws: as ``groupNormDouble(_:groups:weight:bias:eps:)``, and when
    ///   `outputGradient`'s shape is not `input`'s.
    public static func groupNormBackwardDouble(
        outputGradient: Tensor, input: Tensor, groups: Int, weight: Tensor? = nil, eps: Float = 1e-5
    ) throws(NormKitError) -> GroupNormGradients {
        guard outputGradient.shape == input.shape else {
            throw .shapeMismatch(name: "outputGradient", expected: input.shape, actual: outputGradient.shape)
        }
        let (n, channels, spatial) = try groupShape(input.shape, groups: groups, weight: weight, bias: nil)
        let x = input.scalars.map(Double.init), dy = outputGradient.scalars.map(Double.init)
        let w = weight?.scalars.map(Double.init) ?? [Double](repeating: 1, count: channels)
        var result = GroupNormGradients(input: [Double](repeating: 0, count: x.count),
                                        weight: [Double](repeating: 0, count: channels),
                                        bias: [Double](repeating: 0, count: channels))
        let perGroup = channels / groups, length = perGroup * spatial
        for row in 0 ..< n * groups where length > 0 {
            let range = row * length ..< (row + 1) * length
            let (mean, rstd) = groupStatistics(x[range], eps: Double(eps))
            func channel(_ i: Int) -> Int { (row % groups) * perGroup + (i - range.lowerBound) / spatial }
            var sumG = 0.0, sumGX = 0.0
            for i in range {
                let g = dy[i] * w[channel(i)]
                sumG += g
                sumGX += g * (x[i] - mean) * rstd
            }
            let count = Double(length)
            for i in range {
                let c = channel(i), xhat = (x[i] - mean) * rstd
                result.input[i] = rstd * (dy[i] * w[c] - sumG / count - xhat * (sumGX / count))
                result.weight[c] += dy[i] * xhat
                result.bias[c] += dy[i]
            }
        }
        return result
    }

    /// (N, C, spatial) of a GroupNorm input, after the checks.
    private static func groupShape(
        _ shape: [Int], groups: Int, weight: Tensor?, bias: Tensor?
    ) throws(NormKitError) -> (Int, Int, Int) {
        guard shape.count >= 2, groups >= 1, shape[1] % groups == 0 else {
            throw .invalidArgument(name: "input", expected: "[N, C, *spatial] with groups dividing C", actual: "\(shape)")
        }
        let channels = shape[1]
        for (name, p) in [("weight", weight), ("bias", bias)] {
            if let p, p.shape != [channels] {
                throw .parameterShapeMismatch(name: name, expected: [channels], actual: p.shape)
            }
        }
        return (shape[0], channels, shape.dropFirst(2).reduce(1, *))
    }

    /// Mean (with one correction step) and `1/sqrt(var + eps)` of a group, two-pass, in index order.
    private static func groupStatistics(_ values: ArraySlice<Double>, eps: Double) -> (Double, Double) {
        let count = Double(values.count)
        var mean = values.reduce(0, +) / count
        mean += values.reduce(0) { $0 + ($1 - mean) } / count
        let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / count
        return (mean, 1 / (variance + eps).squareRoot())
    }
}
