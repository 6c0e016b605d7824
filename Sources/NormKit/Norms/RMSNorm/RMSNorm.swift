/// Root-mean-square normalisation over the last axis (Zhang, Sennrich 2019), as Llama,
/// Mistral, Qwen, Gemma and T5 use it.
///
/// For each row `x` of the input's last dimension:
///
///     y = x / sqrt(mean(x²) + eps) ⊙ (weightOffset + weight)
///
/// with no mean subtracted and no bias. `weightOffset` is 0 for Llama-style checkpoints
/// and 1 for Gemma's, which store the scale as `1 + w`. Each row's Σx² is summed in
/// `Double` from the float values whatever the checkpoint's storage type (T5 insists on
/// float32 statistics; these are better), and the result is within 1e-6 of a float64
/// computation, relative to
/// `max(1, max |y|)` per row, for every finite input, including rows whose squares
/// overflow or underflow float32 (see docs/numerics.md). A row holding NaN or
/// infinity comes out as NaN, and every other row is unaffected by it.
///
/// ```swift
/// let norm = try RMSNorm(dim: 4096)          // eps 1e-6, weight ones
/// let y = try norm(x)                        // x: [batch, seq, 4096]
/// ```
///
/// `RMSNorm` is a `Sendable` value: one instance may be used from many tasks at once.
public struct RMSNorm: Sendable {
    /// The size of the normalised (last) axis.
    public let dim: Int
    /// Added to the mean square before the square root; finite and > 0.
    public let eps: Float
    /// Added to every weight before it scales: the scale is `weightOffset + weight`
    /// (1 for Gemma-style checkpoints, 0 otherwise). Finite.
    public let weightOffset: Float
    /// The per-feature scale, shape `[dim]`, initialised to ones. A wrong shape makes
    /// ``forward(_:)`` throw.
    public var weight: Tensor

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
        guard weightOffset.isFinite else {
            throw .invalidArgument(name: "weightOffset", expected: "finite (0, or 1 for Gemma)", actual: "\(weightOffset)")
        }
        self.dim = dim
        self.eps = eps
        self.weightOffset = weightOffset
        self.weight = try Tensor(validatingShape: [dim], repeating: 1)
    }

    /// Normalises `input` over its last axis; the same as ``forward(_:)``.
    public func callAsFunction(_ input: Tensor) throws(NormKitError) -> Tensor {
        try forward(input)
    }

    /// Checks that an input of `shape` can be normalised by this layer; returns its row count.
    func validate(input shape: [Int]) throws(NormKitError) -> Int {
        let rows = try NormValidation.rows(of: shape, dim: dim)
        try NormValidation.parameter("weight", weight, dim: dim)
        return rows
    }
}
