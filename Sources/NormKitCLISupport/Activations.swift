import NormKit

/// Seeded inputs shaped like real transformer activations.
package enum Activations {
    /// Unit Gaussian noise plus a few feature dimensions of huge magnitude, the way
    /// GPT-2's residual stream has a handful of "massive activation" channels
    /// (GPT-2 small's dims 138, 378 and 447 reach the hundreds to thousands).
    package static func gpt2Like(batch: Int, seq: Int, dim: Int, seed: UInt64) -> Tensor {
        var x = Tensor.randomNormal([batch, seq, dim], seed: seed)
        let outliers: [(Int, Float)] = [(138, 80), (378, -120), (447, -600)]
        x.withUnsafeMutableBufferPointer { p in
            let rows = batch * seq
            for r in 0..<rows {
                for (d, magnitude) in outliers where d < dim {
                    // Scale the noise already there, so each position differs.
                    p[r * dim + d] = magnitude * (1 + 0.1 * p[r * dim + d])
                }
            }
        }
        return x
    }
}
