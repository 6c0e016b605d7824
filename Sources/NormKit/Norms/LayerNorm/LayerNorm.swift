/// Layer Normalization over the last axis (Ba, Kiros, Hinton 2016), as GPT-2 uses it.
///
/// For each row `x` of the input's last dimension:
///
///     y = weight ⊙ (x - mean(x)) / sqrt(var(x) + eps) + bias
///
/// with the biased (divide-by-`dim`) variance. The result is within 1e-6 of a
/// float64 computation, relative to `max(1, max |y|)` per row, for every finite input
/// (see docs/numerics.md); a row holding NaN or infinity comes out as NaN, and every
/// other row is unaffected by it.
///
/// ```swift
/// let norm = try LayerNorm(dim: 768)
/// let y = try norm(x)      // x: [batch, seq, 768]
/// ```
///
/// `LayerNorm` is a `Sendable` value: one instance may be used from many tasks at once.
public struct LayerNorm: Sendable {
    /// The size of the normalised (last) axis.
    public let dim: Int
    /// Added to the variance before the square root; finite and > 0.
    public let eps: Float
    /// Whether ``weight`` is applied. Without it the scale step is skipped.
    public let elementwiseAffine: Bool
    /// Whether ``bias`` is applied. Without it (or without ``elementwiseAffine``) the
    /// shift step is skipped.
    public let usesBias: Bool
    /// The per-feature scale, shape `[dim]`, initialised to ones. Ignored when
    /// ``elementwiseAffine`` is false. A wrong shape makes ``forward(_:)`` throw.
    public var weight: Tensor
    /// The per-feature shift, shape `[dim]`, initialised to zeros. Ignored when
    /// ``usesBias`` is false. A wrong shape makes ``forward(_:)`` throw.
    public var bias: Tensor
    /// Ones and zeros, used in place of ``weight`` and ``bias`` when the layer skips
    /// them (they share storage with the initial weight and bias until those change).
    let identityWeight: Tensor
    let identityBias: Tensor

    /// Creates a layer with weight ones and bias zeros.
    ///
    /// - Parameters:
    ///   - dim: the size of the last axis of inputs; at least 1.
    ///   - eps: added to the variance; finite and greater than zero.
    ///   - elementwiseAffine: whether to apply a learnable per-feature weight (and bias).
    ///   - bias: whether to apply the per-feature bias (only with `elementwiseAffine`).
    /// - Throws: ``NormKitError/invalidDimension(_:)``, ``NormKitError/invalidEpsilon(_:)``, or
    ///   ``NormKitError/tooLarge(shape:elementCount:)`` for a `dim` no process could allocate.
    public init(dim: Int, eps: Float = 1e-5, elementwiseAffine: Bool = true, bias: Bool = true) throws(NormKitError) {
        try NormValidation.layerSettings(dim: dim, eps: eps)
        self.dim = dim
        self.eps = eps
        self.elementwiseAffine = elementwiseAffine
        self.usesBias = elementwiseAffine && bias
        self.weight = try Tensor(validatingShape: [dim], repeating: 1)
        self.bias = try Tensor(validatingShape: [dim], repeating: 0)
        self.identityWeight = weight
        self.identityBias = self.bias
    }

    /// Normalises `input` over its last axis; the same as ``forward(_:)``.
    public func callAsFunction(_ input: Tensor) throws(NormKitError) -> Tensor {
        try forward(input)
    }

    /// Checks that `input` can be normalised by this layer, and returns its row count.
    func validate(input shape: [Int]) throws(NormKitError) -> Int {
        let rows = try NormValidation.rows(of: shape, dim: dim)
        try validateParameters()
        return rows
    }

    /// Checks the weight and bias the layer applies (they are assignable).
    func validateParameters() throws(NormKitError) {
        if elementwiseAffine { try NormValidation.parameter("weight", weight, dim: dim) }
        if usesBias { try NormValidation.parameter("bias", bias, dim: dim) }
    }
}
