// Building LayerNorms from checkpoint tensors. Kept apart from the file parsers so those
// compile on their own (the fuzz targets build them without the layer or BLAS).
import NormKit

extension LayerNorm {
    /// A layer whose weight and bias come from a checkpoint: `prefix.weight` and
    /// `prefix.bias`, or the older `prefix.gamma` and `prefix.beta`.
    ///
    /// A prefix with a weight and no bias is refused unless `requireBias` is false:
    /// in Llama, Mistral, Qwen, Gemma and T5 files those layers are RMSNorm layers
    /// (no mean subtracted), which `RMSNorm.init(loading:from:eps:weightOffset:)`
    /// loads. Loading one as a LayerNorm would give a wrong answer without any error.
    /// With `requireBias: false` a weight-only prefix gives a bias-free LayerNorm
    /// (`usesBias == false`), for files that really hold one.
    ///
    /// A prefix with a leading `transformer.` also matches the file's name without it,
    /// and the other way round, so `"h.0.ln_1"` and `"transformer.h.0.ln_1"` load the
    /// same layer from either kind of GPT-2 file.
    ///
    /// ```swift
    /// let file = try SafeTensors(contentsOf: url)
    /// let ln1 = try LayerNorm(loading: "h.0.ln_1", from: file)   // GPT-2: dim 768, eps 1e-5
    /// ```
    ///
    /// - Throws: `NormKitError.missingTensor(name:available:)` listing the file's
    ///   norm layers (``SafeTensors/normLayerNames``) when there is no such layer;
    ///   what ``SafeTensors/normLayerParameters(for:)`` throws (a weight that is not
    ///   `[dim]`, a bias of another shape, a dtype NormKit does not convert); `NormKitError.layerKindMismatch(name:reason:)` for a
    ///   weight-only prefix when `requireBias` is true; `NormKitError.invalidEpsilon(_:)`;
    ///   and what ``SafeTensors/tensor(named:allowingOverflow:)`` throws (e.g. an unsupported dtype). A layer
    ///   whose names mix the two conventions (`weight` with `beta`, `gamma` with `bias`) is
    ///   refused as ambiguous (``SafeTensors/normParameterNames(for:)``).
    public init(
        loading prefix: String, from file: SafeTensors, eps: Float = 1e-5, requireBias: Bool = true
    ) throws(NormKitError) {
        // Every check that needs no data first (names, dtypes, shapes): the same call
        // `normkit inspect` makes to say whether a layer loads.
        let found = try file.normLayerParameters(for: prefix)
        try self.init(dim: found.weight.shape[0], eps: eps, elementwiseAffine: true, bias: found.bias != nil)
        if requireBias && found.bias == nil {
            throw .layerKindMismatch(
                name: prefix,
                reason: "the file has \(found.weight.name) and no bias. Llama-family files (Llama, Mistral, Qwen, Gemma, T5) "
                    + "hold RMSNorm layers there: load it with RMSNorm(loading:from:). To load a LayerNorm without "
                    + "bias on purpose, pass requireBias: false.")
        }
        self.weight = try file.tensor(named: found.weight.name)
        if let bias = found.bias { self.bias = try file.tensor(named: bias.name) }
    }
}

extension GPT2 {
    /// A named norm layer of a checkpoint.
    public struct NamedLayer: Sendable {
        /// The layer's name in the file, e.g. `h.0.ln_1` or `transformer.ln_f`.
        public let name: String
        /// The layer, with the file's weight and bias.
        public let norm: LayerNorm
    }

    /// Every norm layer of a GPT-2 checkpoint in model order (see ``normLayerNames(in:)``):
    /// 25 for GPT-2 small, 49 for medium, 73 for large, 97 for XL.
    ///
    /// - Parameters:
    ///   - file: the checkpoint.
    ///   - eps: GPT-2's `layer_norm_epsilon`, 1e-5.
    /// - Throws: what ``normLayerNames(in:)`` and `LayerNorm.init(loading:from:eps:requireBias:)` throw.
    public static func normLayers(from file: SafeTensors, eps: Float = 1e-5) throws(NormKitError) -> [NamedLayer] {
        var layers: [NamedLayer] = []
        for name in try normLayerNames(in: file) {
            layers.append(NamedLayer(name: name, norm: try LayerNorm(loading: name, from: file, eps: eps)))
        }
        return layers
    }
}
