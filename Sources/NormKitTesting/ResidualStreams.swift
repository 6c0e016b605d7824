import NormKit

extension Reference {
    /// Pairs of (input, residual) for testing a fused residual add and norm: the sum is
    /// what the norm sees. NormKit's fused tests and `normkit-dev accuracy --fused` use them.
    public enum ResidualStream: String, CaseIterable, Sendable {
        /// Both `randn`.
        case gaussian = "randn"
        /// GPT-2's residual stream: unit noise with every 97th channel near 450, plus a
        /// sublayer output of 0.3·randn.
        case massiveChannels = "gpt2 massive channels"
        /// `1e4 + randn` against its negative plus `1e-2·randn`: the sum is all cancellation.
        case cancelling = "cancelling"
        /// Every other row of the input `1e30·randn` (the sum's squares overflow float).
        case huge = "1e30 mixed"
        /// Every third row of the input ±3e38, near the largest float (1/rms below float's
        /// normal range), between ordinary rows.
        case nearFloatMax = "near float max mixed"

        /// `(input, residual)`, each `[rows, dim]`, from seeded noise.
        public func tensors(rows: Int, dim: Int) throws(NormKitError) -> (input: Tensor, residual: Tensor) {
            let shape = [rows, dim]
            let a = Tensor.randomNormal(shape, seed: 31).scalars
            let b = Tensor.randomNormal(shape, seed: 32).scalars
            var x = a, h = b
            switch self {
            case .gaussian: break
            case .massiveChannels:
                for i in h.indices where (i % dim) % 97 == 3 { h[i] = 450 * (1 + 0.05 * b[i]) }
                for i in x.indices { x[i] = 0.3 * a[i] }
            case .cancelling:
                for i in x.indices {
                    x[i] = 1e4 + a[i]
                    h[i] = -x[i] + 1e-2 * b[i]
                }
            case .huge:
                for i in x.indices where (i / max(dim, 1)) % 2 == 0 { x[i] = 1e30 * a[i] }
            case .nearFloatMax:
                for i in x.indices where (i / max(dim, 1)) % 3 == 1 { x[i] = a[i] >= 0 ? 3e38 : -3e38 }
            }
            return (try Tensor(shape: shape, scalars: x), try Tensor(shape: shape, scalars: h))
        }
    }
}
