/// Group Normalization (Wu, He 2018), as diffusion UNets and many vision models use it.
///
/// The input is `[N, C, *spatial]`, channels first as in PyTorch's `nn.GroupNorm`. The
/// `C` channels fall into ``groups`` groups of `C / groups` consecutive channels; each
/// (sample, group) is one row of `C / groups × spatial` contiguous values, normalised
/// together, then channel `c` is scaled by `weight[c]` and shifted by `bias[c]`:
///
///     y = (x - mean(row)) / sqrt(var(row) + eps) · weight[c] + bias[c]
///
/// with the biased variance. The statistics are taken in `Double` as LayerNorm's are,
/// so the result is within 1e-6 of a float64 computation, relative to
/// `max(1, max |y|)` per (sample, group), for every finite input, including groups
/// whose mean is a million times their spread (docs/numerics.md). A group holding NaN
/// or infinity comes out as NaN, and every other group is unaffected by it.
///
/// Backward, with x̂ = (x - mean)·rstd and g = outputGradient·weight[c], per row,
/// computed in `Double` and rounded once:
///
///     input     = rstd·(g - mean(g) - x̂·mean(g·x̂))
///     weight[c] = Σ outputGradient ⊙ x̂   over samples and channel c's positions
///     bias[c]   = Σ outputGradient         over the same
///
/// ```swift
/// let norm = try GroupNorm(groups: 32, channels: 320)
/// let y = try norm(x)                        // x: [2, 320, 64, 64]
/// ```
///
/// `GroupNorm` is a `Sendable` value: one instance may be used from many tasks at once.
public struct GroupNorm: Normalization {
    /// The number of groups the channels fall into; divides ``channels``.
    public let groups: Int
    /// The number of channels: the size of an input's axis 1.
    public let channels: Int
    /// Added to the variance before the square root; finite and > 0.
    public let eps: Float
    /// Whether ``weight`` and ``bias`` are applied.
    public let affine: Bool
    /// The per-channel scale, shape `[channels]`, initialised to ones. Ignored when
    /// ``affine`` is false. A wrong shape makes ``forward(_:)`` throw.
    public var weight: Tensor
    /// The per-channel shift, shape `[channels]`, initialised to zeros. Ignored when
    /// ``affine`` is false. A wrong shape makes ``forward(_:)`` throw.
    public var bias: Tensor
    /// Ones and zeros, used in place of ``weight`` and ``bias`` when the layer skips them.
    let identityWeight: Tensor
    let identityBias: Tensor

    /// Creates a layer with weight ones and bias zeros.
    ///
    /// - Parameters:
    ///   - groups: the number of groups; at least 1, and a divisor of `channels`.
    ///   - channels: the size of inputs' axis 1; at least 1.
    ///   - eps: added to the variance; finite and greater than zero.
    ///   - affine: whether to apply the per-channel weight and bias.
    /// - Throws: ``NormKitError/invalidArgument(name:expected:actual:)`` for a `groups`
    ///   below 1 or not dividing `channels`, ``NormKitError/invalidDimension(_:)`` for
    ///   `channels` below 1, ``NormKitError/invalidEpsilon(_:)``, or
    ///   ``NormKitError/tooLarge(shape:elementCount:)``.
    public init(groups: Int, channels: Int, eps: Float = 1e-5, affine: Bool = true) throws(NormKitError) {
        try NormValidation.layerSettings(dim: channels, eps: eps)
        guard groups >= 1 else {
            throw .invalidArgument(name: "groups", expected: "at least 1", actual: "\(groups)")
        }
        guard channels % groups == 0 else {
            throw .invalidArgument(name: "groups", expected: "a divisor of channels (\(channels))", actual: "\(groups)")
        }
        self.groups = groups
        self.channels = channels
        self.eps = eps
        self.affine = affine
        self.weight = try Tensor(validatingShape: [channels], repeating: 1)
        self.bias = try Tensor(validatingShape: [channels], repeating: 0)
        self.identityWeight = weight
        self.identityBias = bias
    }
}
