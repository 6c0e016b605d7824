import NormKit
import NormKitTesting
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

/// The hard rows of `Reference.HardRow`, by name (test arguments need plain values).
enum HardRows {
    static func make(_ name: String, dim: Int, seed: UInt64 = 7) -> [Float] {
        guard let row = Reference.HardRow(rawValue: name) else { fatalError("unknown hard row \(name)") }
        return row.values(dim: dim, seed: seed)
    }

    static let names = Reference.HardRow.allCases.map(\.rawValue)
}
