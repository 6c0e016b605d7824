import NormKit

extension Reference {
    /// A catalogue of rows on which float32 LayerNorms are known to go wrong, for
    /// testing any implementation (NormKit's tests and `normkit-dev accuracy` use it).
    ///
    /// Statistics kept in float32 lose the spread to the mean on ``largeMeanSmallSpread``,
    /// ``integerSteps`` and ``millionPlusNoise``, and a float32 sum of squares overflows on
    /// ``hugeNoise`` and ``enormousNoise`` (docs/numerics.md has PyTorch's measured errors).
    public enum HardRow: String, CaseIterable, Sendable {
        /// `100 + 0.01·randn`: mean 10^4 times the spread.
        case largeMeanSmallSpread = "100 + 0.01*randn"
        /// `40000 + (i % 4)`: integers whose float sum loses the spread.
        case integerSteps = "40000 + (i % 4)"
        /// `1e6 + randn`: mean 10^6 times the spread.
        case millionPlusNoise = "1e6 + randn"
        /// `1e20·randn`: squares overflow float.
        case hugeNoise = "1e20*randn"
        /// `1e30·randn`: squares overflow float by far.
        case enormousNoise = "1e30*randn"
        /// `1e-30·randn`: squares underflow float.
        case tinyNoise = "1e-30*randn"
        /// `1e-40·randn`: subnormal inputs.
        case subnormalNoise = "subnormal"
        /// Every element 3.7.
        case constant = "constant"
        /// Every element 0.
        case zeros = "zeros"
        /// ±3e38, near the largest float.
        case nearFloatMax = "near float max"
        /// `randn + 1`: mean equal to the spread (the fast path's boundary).
        case meanEqualsSpread = "mean = std"
        /// `randn + 0.9`.
        case meanBelowSpread = "mean = 0.9 std"
        /// `randn + 1.1`.
        case meanAboveSpread = "mean = 1.1 std"
        /// `randn` with one element set to 10^4.
        case oneOutlier = "one outlier"
        /// `2^24 + 2·(i % 3)`: the spread is the float spacing at the mean.
        case spreadAtULP = "huge mean, spread at ulp"
        /// Plain `randn`.
        case gaussian = "randn"

        /// The row, `dim` elements, from seeded Gaussian noise.
        public func values(dim: Int, seed: UInt64 = 7) -> [Float] {
            let noise = dim > 0 ? Tensor.randomNormal([dim], seed: seed).scalars : []
            switch self {
            case .largeMeanSmallSpread: return noise.map { 100 + 0.01 * $0 }
            case .integerSteps: return (0..<dim).map { 40000 + Float($0 % 4) }
            case .millionPlusNoise: return noise.map { 1e6 + $0 }
            case .hugeNoise: return noise.map { 1e20 * $0 }
            case .enormousNoise: return noise.map { 1e30 * $0 }
            case .tinyNoise: return noise.map { 1e-30 * $0 }
            case .subnormalNoise: return noise.map { Float(1e-40 * Double($0)) }
            case .constant: return [Float](repeating: 3.7, count: dim)
            case .zeros: return [Float](repeating: 0, count: dim)
            case .nearFloatMax: return noise.map { $0 >= 0 ? 3e38 : -3e38 }
            case .meanEqualsSpread: return noise.map { $0 + 1 }
            case .meanBelowSpread: return noise.map { $0 + 0.9 }
            case .meanAboveSpread: return noise.map { $0 + 1.1 }
            case .oneOutlier: return noise.enumerated().map { $0.offset == dim / 2 ? 1e4 : $0.element }
            case .spreadAtULP: return (0..<dim).map { Float(16_777_216) + 2 * Float($0 % 3) }
            case .gaussian: return noise
            }
        }
    }
}
