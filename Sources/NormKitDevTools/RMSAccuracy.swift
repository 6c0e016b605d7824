import NormKit
import NormKitCLISupport
import NormKitTesting

/// `normkit-dev accuracy --rms`: RMSNorm's forward and gradient errors on the rows the
/// RMSNorm issue lists, at every instruction set this machine has.
enum RMSAccuracy {
    /// One line per row kind: the worst, over `seeds` seeds, the listed dims, every
    /// supported instruction set and three layers (weight ones; random weight; Gemma
    /// offset 1 with a weight near 0), of the forward error (per row), dx (per row) and
    /// dweight (whole tensor) against the float64 reference, with dy ~ N(0, 1).
    static func table(dims: [Int], seeds: Int) throws -> [String] {
        var lines = ["RMSNorm: max over \(seeds) seeds, dims \(dims.map(String.init).joined(separator: ",")), levels "
                     + InstructionSet.supported.map(\.rawValue).joined(separator: ",")
                     + "; bounds 1e-6 (y), 1e-5 (dx, dweight)"]
        lines.append("row".padded(to: 24) + "y".padded(to: 12) + "dx".padded(to: 12) + "dweight")
        var worst = (0.0, 0.0, 0.0)
        for kind in Reference.RMSRow.allCases {
            var e = (0.0, 0.0, 0.0)
            for dim in dims {
                var weighted = try RMSNorm(dim: dim)
                weighted.weight = Tensor.randomNormal([dim], mean: 1, standardDeviation: 0.5, seed: 3)
                var gemma = try RMSNorm(dim: dim, weightOffset: 1)
                gemma.weight = Tensor.randomNormal([dim], standardDeviation: 0.3, seed: 5)
                for norm in [try RMSNorm(dim: dim), weighted, gemma] {
                    for seed in 0..<UInt64(seeds) {
                        let x = try Tensor(shape: [1, dim], scalars: kind.values(dim: dim, seed: seed))
                        let dy = Tensor.randomNormal([1, dim], seed: seed &+ 1000)
                        let y64 = try Reference.rmsNormDouble(x, weight: norm.weight, eps: norm.eps, weightOffset: norm.weightOffset)
                        let g64 = try Reference.rmsNormBackwardDouble(outputGradient: dy, input: x, weight: norm.weight,
                                                                      eps: norm.eps, weightOffset: norm.weightOffset)
                        for level in InstructionSet.supported {
                            try InstructionSet.with(level) {
                                let (y, s) = try norm.forwardForTraining(x)
                                let g = try norm.backward(outputGradient: dy, input: x, statistics: s)
                                e.0 = max(e.0, Reference.maxRowError(y, expected: y64))
                                e.1 = max(e.1, Reference.maxRowError(g.input, expected: g64.input))
                                e.2 = max(e.2, Reference.maxError(g.weight, expected: g64.weight))
                            }
                        }
                    }
                }
            }
            worst = (max(worst.0, e.0), max(worst.1, e.1), max(worst.2, e.2))
            lines.append(kind.rawValue.padded(to: 24) + sci(e.0).padded(to: 12) + sci(e.1).padded(to: 12) + sci(e.2))
        }
        lines.append("worst".padded(to: 24) + sci(worst.0).padded(to: 12) + sci(worst.1).padded(to: 12) + sci(worst.2))
        return lines
    }
}

/// `normkit-dev accuracy --fused`: the fused residual add's output against a float64 norm
/// of the float32 sum, for both norms, at every instruction set this machine has.
enum FusedAccuracy {
    static func table(dims: [Int]) throws -> [String] {
        var lines = ["Add & Norm: max_row |y - norm64(x + h)| / max(1, max|y64|) over dims "
                     + dims.map(String.init).joined(separator: ",") + ", 5 rows, levels "
                     + InstructionSet.supported.map(\.rawValue).joined(separator: ",") + "; bound 1e-6"]
        lines.append("stream".padded(to: 24) + "LayerNorm".padded(to: 12) + "RMSNorm".padded(to: 12) + "RMSNorm, Gemma")
        var worst = 0.0
        for stream in Reference.ResidualStream.allCases {
            var e = [0.0, 0.0, 0.0]
            for dim in dims {
                let (x, h) = try stream.tensors(rows: 5, dim: dim)
                let sum = try Tensor(shape: x.shape, scalars: zip(x.scalars, h.scalars).map { $0 + $1 })
                var ln = try LayerNorm(dim: dim)
                ln.weight = Tensor.randomNormal([dim], mean: 1, standardDeviation: 0.3, seed: 21)
                ln.bias = Tensor.randomNormal([dim], standardDeviation: 0.2, seed: 22)
                var rms = try RMSNorm(dim: dim)
                rms.weight = ln.weight
                var gemma = try RMSNorm(dim: dim, weightOffset: 1)
                gemma.weight = Tensor.randomNormal([dim], standardDeviation: 0.3, seed: 23)
                let expected = [
                    try Reference.layerNormDouble(sum, weight: ln.weight, bias: ln.bias, eps: ln.eps),
                    try Reference.rmsNormDouble(sum, weight: rms.weight, eps: rms.eps),
                    try Reference.rmsNormDouble(sum, weight: gemma.weight, eps: gemma.eps, weightOffset: 1),
                ]
                for level in InstructionSet.supported {
                    try InstructionSet.with(level) {
                        let outputs = [try ln.forward(x, addingResidual: h).output,
                                       try rms.forward(x, addingResidual: h).output,
                                       try gemma.forward(x, addingResidual: h).output]
                        for k in 0..<3 { e[k] = max(e[k], Reference.maxRowError(outputs[k], expected: expected[k])) }
                    }
                }
            }
            worst = max(worst, e.max() ?? 0)
            lines.append(stream.rawValue.padded(to: 24) + sci(e[0]).padded(to: 12) + sci(e[1]).padded(to: 12) + sci(e[2]))
        }
        lines.append("worst: \(sci(worst))")
        return lines
    }
}
