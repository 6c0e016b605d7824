/// Root-mean-square normalisation over the last axis, or several trailing axes (Zhang,
/// Sennrich 2019), as Llama, Mistral, Qwen, Gemma and T5 use it.
///
/// For each row `x` (the input's trailing ``normalizedShape`` elements):
///
///     y = x / sqrt(mean(x²) + eps) ⊙ (weightOffset + weight)
///
/// with no mean subtracted and no bias. `weightOffset` is 0 for Llama-style checkpoints
/// and 1 for Gemma's, which store the scale as `1 + w`. Each row's Σx² is summed from
/// the float values whatever the checkpoint's storage type (T5 insists on float32
/// statistics; these are better): in float blocks with a proved bound of about 4·2^-24
/// where a per-row certificate allows, else in `Double`, and the result is within 1e-6 of a float64
/// computation, relative to
/// `max(1, max |y|)` per row, for every finite input, including rows whose squares
/// overflow or underflow float32 (see docs/numerics.md). A row holding NaN or
/// infinity comes out as NaN, and every other row is unaffected by it.
///
/// Backward, with r = rrms, x̂ = x·r and g = outputGradient ⊙ (weightOffset + weight),
/// per row, computed in `Double` from the float inputs and rounded once:
///
///     input  = r·(g - x̂·mean(g·x̂))
///     weight = Σ_rows outputGradient ⊙ x̂
///
/// ```swift
/// let norm = try RMSNorm(dim: 4096)          // eps 1e-6, weight ones
/// let y = try norm(x)                        // x: [batch, seq, 4096]
/// ```
///
/// `RMSNorm` is a `Sendable` value: one instance may be used from many tasks at once.
public struct RMSNorm: RowNormalization {
    /// The number of elements normalised together: the size of the last axis for a
    /// layer made with `dim:`, the product of ``normalizedShape`` in general.
    public let dim: Int
    /// The trailing dimensions normalised together (`[dim]` for a layer made with
    /// `dim:`); ``weight`` has this shape.
    public let normalizedShape: [Int]
    /// Added to the mean square before the square root; finite and > 0.
    public let eps: Float
    /// Added to every weight before it scales: the scale is `weightOffset + weight`
    /// (1 for Gemma-style checkpoints, 0 otherwise). Finite.
    public let weightOffset: Float
    /// The per-feature scale, shape ``normalizedShape``, initialised to ones. A wrong shape makes
    /// ``forward(_:)`` throw.
    public var weight: Tensor
    /// How the half-precision forms round (``HalfRounding``): ``HalfRounding/once`` (the
    /// default) or Hugging Face's ``HalfRounding/huggingFaceLlama`` order. The float32
    /// forms ignore it.
    public var halfRounding: HalfRounding = .once

    /// Creates a layer with weight ones.
    ///
    /// - Parameters:
    ///   - dim: the size of the last axis of inputs; at least 1.
    ///   - eps: added to the mean square; finite and greater than zero (Llama: 1e-5 or
    ///     1e-6, read from the model's config as `rms_norm_eps`).
    ///   - weightOffset: the scale is `weightOffset + weight`; 1 for Gemma, else 0.
    /// - Throws: ``NormKitError/invalidDimension(_:)``, ``NormKitError/invalidEpsilon(_:)``,
    ///   ``NormKitError/invalidArgument(name:expected:actual:)`` for a non-finite
    ///   `weightOffset`, or ``NormKitError/tooLarge(shape:elementCount:)``.
    public init(dim: Int, eps: Float = 1e-6, weightOffset: Float = 0) throws(NormKitError) {
        try NormValidation.layerSettings(dim: dim, eps: eps)
        try self.init(checkedShape: [dim], dim: dim, eps: eps, weightOffset: weightOffset)
    }

    /// Creates a layer over the trailing dimensions `normalizedShape`, with weight ones
    /// of that shape. An input's trailing dimensions must equal `normalizedShape`.
    ///
    /// - Parameters:
    ///   - normalizedShape: one or more dimensions, each at least 1.
    ///   - eps: as ``init(dim:eps:weightOffset:)``.
    ///   - weightOffset: as ``init(dim:eps:weightOffset:)``.
    /// - Throws: ``NormKitError/emptyShape``, ``NormKitError/invalidDimension(_:)`` for a
    ///   dimension below 1, ``NormKitError/invalidEpsilon(_:)``, or as ``init(dim:eps:weightOffset:)``.
    public init(normalizedShape: [Int], eps: Float = 1e-6, weightOffset: Float = 0) throws(NormKitError) {
        let dim = try NormValidation.normalizedShape(normalizedShape, eps: eps)
        try self.init(checkedShape: normalizedShape, dim: dim, eps: eps, weightOffset: weightOffset)
    }

    private init(checkedShape: [Int], dim: Int, eps: Float, weightOffset: Float) throws(NormKitError) {
        guard weightOffset.isFinite else {
            throw .invalidArgument(name: "weightOffset", expected: "finite (0, or 1 for Gemma)", actual: "\(weightOffset)")
        }
        self.dim = dim
        self.normalizedShape = checkedShape
        self.eps = eps
        self.weightOffset = weightOffset
        self.weight = try Tensor(validatingShape: checkedShape, repeating: 1)
    }
}
