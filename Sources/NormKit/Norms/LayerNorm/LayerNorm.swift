/// Layer Normalization over the last axis, or over several trailing axes (Ba, Kiros,
/// Hinton 2016), as GPT-2 uses it.
///
/// For each row `x` (the input's trailing ``normalizedShape`` elements):
///
///     y = weight ⊙ (x - mean(x)) / sqrt(var(x) + eps) + bias
///
/// with the biased (divide-by-`dim`) variance. Backward, with x̂ = (x - mean)·rstd and
/// g = outputGradient ⊙ weight, per row:
///
///     input  = rstd·(g - mean(g) - x̂·mean(g·x̂))
///     weight = Σ_rows outputGradient ⊙ x̂
///     bias   = Σ_rows outputGradient
/// The result is within 1e-6 of a
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
public struct LayerNorm: RowNormalization {
    /// The number of elements normalised together: the size of the last axis for a
    /// layer made with `dim:`, the product of ``normalizedShape`` in general.
    public let dim: Int
    /// The trailing dimensions normalised together (`[dim]` for a layer made with
    /// `dim:`); ``weight`` and ``bias`` have this shape.
    public let normalizedShape: [Int]
    /// Added to the variance before the square root; finite and > 0.
    public let eps: Float
    /// Whether ``weight`` is applied. Without it the scale step is skipped.
    public let elementwiseAffine: Bool
    /// Whether ``bias`` is applied. Without it (or without ``elementwiseAffine``) the
    /// shift step is skipped.
    public let usesBias: Bool
    /// The per-feature scale, shape ``normalizedShape``, initialised to ones. Ignored when
    /// ``elementwiseAffine`` is false. A wrong shape makes ``forward(_:)`` throw.
    public var weight: Tensor { didSet { weightMax = ForwardParameters.largestMagnitude(of: weight) } }
    /// The per-feature shift, shape ``normalizedShape``, initialised to zeros. Ignored when
    /// ``usesBias`` is false. A wrong shape makes ``forward(_:)`` throw.
    public var bias: Tensor { didSet { biasMax = ForwardParameters.largestMagnitude(of: bias) } }
    /// max |weight| and max |bias| (NaN when one is NaN), kept up to date on every change
    /// of the parameters, so a call (one decode token) does not scan them: the forward's
    /// output certificate bounds its error from them (docs/numerics.md, "The affine certificate").
    private(set) var weightMax: Float = 1
    private(set) var biasMax: Float = 0
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
        try self.init(checkedShape: [dim], dim: dim, eps: eps, elementwiseAffine: elementwiseAffine, bias: bias)
    }

    /// Creates a layer over the trailing dimensions `normalizedShape` (PyTorch's
    /// `nn.LayerNorm(normalized_shape)`), with weight ones and bias zeros of that shape.
    /// An input's trailing dimensions must equal `normalizedShape`.
    ///
    /// - Parameters:
    ///   - normalizedShape: one or more dimensions, each at least 1.
    ///   - eps: as ``init(dim:eps:elementwiseAffine:bias:)``.
    ///   - elementwiseAffine: as ``init(dim:eps:elementwiseAffine:bias:)``.
    ///   - bias: as ``init(dim:eps:elementwiseAffine:bias:)``.
    /// - Throws: ``NormKitError/emptyShape``, ``NormKitError/invalidDimension(_:)`` for a
    ///   dimension below 1, ``NormKitError/invalidEpsilon(_:)``, or a shape error for a
    ///   shape no process could allocate.
    public init(normalizedShape: [Int], eps: Float = 1e-5, elementwiseAffine: Bool = true, bias: Bool = true) throws(NormKitError) {
        let dim = try NormValidation.normalizedShape(normalizedShape, eps: eps)
        try self.init(checkedShape: normalizedShape, dim: dim, eps: eps, elementwiseAffine: elementwiseAffine, bias: bias)
    }

    private init(checkedShape: [Int], dim: Int, eps: Float, elementwiseAffine: Bool, bias: Bool) throws(NormKitError) {
        self.dim = dim
        self.normalizedShape = checkedShape
        self.eps = eps
        self.elementwiseAffine = elementwiseAffine
        self.usesBias = elementwiseAffine && bias
        self.weight = try Tensor(validatingShape: checkedShape, repeating: 1)
        self.bias = try Tensor(validatingShape: checkedShape, repeating: 0)
        self.identityWeight = weight
        self.identityBias = self.bias
    }
}
