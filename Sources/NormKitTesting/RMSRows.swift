import NormKit

extension Reference {
    /// Rows on which float32 RMSNorms go wrong, or come near to: squares that overflow
    /// or underflow float32, rows whose mean square is near `eps`, massive channels.
    /// NormKit's RMSNorm tests and `normkit-dev accuracy --rms` use them.
    ///
    /// PyTorch's float32 `F.rms_norm` (composite: pow, mean, add, rsqrt, mul) returns 0
    /// for every element of ``hugeNoise`` and ``enormousNoise`` (the squares overflow to
    /// infinity) and loses all digits on ``tinyNoise`` (they underflow to 0).
    public enum RMSRow: String, CaseIterable, Sendable {
        /// Plain `randn`.
        case gaussian = "randn"
        /// `1e20·randn`: squares overflow float.
        case hugeNoise = "1e20*randn"
        /// `1e30·randn`: squares overflow float by far.
        case enormousNoise = "1e30*randn"
        /// `1e-25·randn`: squares underflow float.
        case tinyNoise = "1e-25*randn"
        /// Subnormal inputs, about `1e-40·randn`.
        case subnormalNoise = "subnormal"
        /// Every element 0: the output is exactly 0.
        case zeros = "zeros"
        /// Every element 3.7.
        case constant = "constant"
        /// `1e6 + randn`.
        case millionPlusNoise = "1e6 + randn"
        /// `1e-3·randn`: mean square about 1e-6, the default `eps`.
        case nearEps = "near eps"
        /// `3e-4·randn`: mean square a tenth of the default `eps`.
        case belowEps = "below eps"
        /// Unit noise with every 97th channel near 300 (GPT-2's massive activations).
        case massiveChannels = "massive channels"
        /// ±3e38, near the largest float.
        case nearFloatMax = "near float max"
        /// `randn` with one element 1e30.
        case oneHuge = "one huge"
        /// Zeros with one element 1e-30.
        case oneTinyAmongZeros = "one tiny among zeros"
        /// Uniform in [0, 1).
        case uniform = "uniform [0, 1)"

        /// The row, `dim` elements, from seeded noise.
        public func values(dim: Int, seed: UInt64 = 7) -> [Float] {
            let noise = dim > 0 ? Tensor.randomNormal([dim], seed: seed).scalars : []
            switch self {
            case .gaussian: return noise
            case .hugeNoise: return noise.map { 1e20 * $0 }
            case .enormousNoise: return noise.map { 1e30 * $0 }
            case .tinyNoise: return noise.map { 1e-25 * $0 }
            case .subnormalNoise: return noise.map { Float(1e-40 * Double($0)) }
            case .zeros: return [Float](repeating: 0, count: dim)
            case .constant: return [Float](repeating: 3.7, count: dim)
            case .millionPlusNoise: return noise.map { 1e6 + $0 }
            case .nearEps: return noise.map { 1e-3 * $0 }
            case .belowEps: return noise.map { 3e-4 * $0 }
            case .massiveChannels: return noise.enumerated().map { i, v in i % 97 == 5 ? 300 * (1 + 0.1 * v) : v }
            case .nearFloatMax: return noise.map { $0 >= 0 ? 3e38 : -3e38 }
            case .oneHuge: return noise.enumerated().map { $0.offset == dim / 2 ? 1e30 : $0.element }
            case .oneTinyAmongZeros: return (0..<dim).map { $0 == dim / 3 ? 1e-30 : 0 }
            case .uniform: return dim > 0 ? Tensor.randomUniform([dim], seed: seed).scalars : []
            }
        }
    }
}
