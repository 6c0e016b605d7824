import NormKit
import Testing

/// The accuracy bound of the foundation issue: per row, |y - y64| / max(1, max |y64|).
let forwardBound = 1e-6

/// Runs `norm` on `x` and returns the error against the float64 reference.
func forwardError(_ norm: LayerNorm, _ x: Tensor) throws -> Double {
    let y = try norm(x)
    #expect(y.shape == x.shape)
    let expected = try Reference.layerNormDouble(
        x, weight: norm.elementwiseAffine ? norm.weight : nil,
        bias: norm.usesBias ? norm.bias : nil, eps: norm.eps)
    return Reference.maxRowError(y, expected: expected)
}

/// Rows on which float32 LayerNorms are known to fail, by name, each `dim` long.
enum HardRows {
    static func make(_ name: String, dim: Int, seed: UInt64 = 7) -> [Float] {
        let noise = Tensor.randomNormal([dim], seed: seed).scalars
        switch name {
        case "100 + 0.01*randn": return noise.map { 100 + 0.01 * $0 }
        case "40000 + (i % 4)": return (0..<dim).map { 40000 + Float($0 % 4) }
        case "1e6 + randn": return noise.map { 1e6 + $0 }
        case "1e20*randn": return noise.map { 1e20 * $0 }
        case "1e30*randn": return noise.map { 1e30 * $0 }
        case "1e-30*randn": return noise.map { 1e-30 * $0 }
        case "subnormal": return noise.map { Float(1e-40 * Double($0)) }
        case "constant": return [Float](repeating: 3.7, count: dim)
        case "zeros": return [Float](repeating: 0, count: dim)
        case "near float max": return noise.map { $0 >= 0 ? 3e38 : -3e38 }
        case "mean = std": return noise.map { $0 + 1 }
        case "mean = 0.9 std": return noise.map { $0 + 0.9 }
        case "mean = 1.1 std": return noise.map { $0 + 1.1 }
        case "one outlier": return noise.enumerated().map { $0.offset == dim / 2 ? 1e4 : $0.element }
        case "huge mean, spread at ulp": return (0..<dim).map { Float(16_777_216) + 2 * Float($0 % 3) }
        case "randn": return noise
        default: fatalError("unknown hard row \(name)")
        }
    }

    static let names = [
        "100 + 0.01*randn", "40000 + (i % 4)", "1e6 + randn", "1e20*randn", "1e30*randn",
        "1e-30*randn", "subnormal", "constant", "zeros", "near float max", "mean = std",
        "mean = 0.9 std", "mean = 1.1 std", "one outlier", "huge mean, spread at ulp", "randn",
    ]
}
