// Building RMSNorms from checkpoint tensors, and the Llama layer names.
import NormKit

extension RMSNorm {
    /// A layer whose weight comes from a checkpoint: `prefix.weight`.
    ///
    /// A leading `model.` in `prefix` is optional (Hugging Face's `LlamaForCausalLM`
    /// files have it, `LlamaModel` files do not), so `"model.norm"` and `"norm"` load the
    /// same layer from either kind of file. A prefix that also has a bias is a LayerNorm,
    /// and is refused.
    ///
    /// ```swift
    /// let file = try SafeTensors(contentsOf: url)
    /// let norm = try RMSNorm(loading: "model.layers.0.input_layernorm", from: file, eps: 1e-5)
    /// let gemma = try RMSNorm(loading: "model.norm", from: gemmaFile, weightOffset: 1)
    /// ```
    ///
    /// - Parameters:
    ///   - prefix: the layer's name, without `.weight`.
    ///   - file: the checkpoint.
    ///   - eps: the model's `rms_norm_eps` (Llama 2 and 3, Mistral: 1e-5; Qwen 2: 1e-6).
    ///   - weightOffset: 1 for Gemma, whose files store the scale as `1 + weight`; else 0.
    /// - Throws: `NormKitError.missingTensor(name:available:)` listing the file's norm
    ///   layers when there is no `prefix.weight`; `NormKitError.layerKindMismatch(name:reason:)`
    ///   when the prefix has a bias; `NormKitError.invalidArgument(name:expected:actual:)`
    ///   for a weight that is not rank 1; what ``init(dim:eps:weightOffset:)`` and
    ///   ``SafeTensors/tensor(named:allowingOverflow:)`` throw.
    public init(loading prefix: String, from file: SafeTensors, eps: Float = 1e-6, weightOffset: Float = 0) throws(NormKitError) {
        guard let name = Llama.candidates(prefix).first(where: { file.contains($0 + ".weight") }) else {
            throw .missingTensor(name: prefix, available: file.normLayerNames)
        }
        for bias in ["bias", "beta"] where file.contains("\(name).\(bias)") {
            throw .layerKindMismatch(
                name: prefix,
                reason: "the file has \(name).\(bias): a layer with a bias is a LayerNorm (mean subtracted, bias "
                    + "added), not an RMSNorm; load it with LayerNorm(loading:from:)")
        }
        let weight = try file.tensor(named: name + ".weight")
        guard weight.rank == 1, weight.shape[0] >= 1 else {
            throw .invalidArgument(name: name + ".weight", expected: "an RMSNorm weight of shape [dim], dim >= 1",
                                   actual: "shape \(weight.shape)")
        }
        try self.init(dim: weight.shape[0], eps: eps, weightOffset: weightOffset)
        self.weight = weight
    }
}

/// The normalisation layers of a Llama-family checkpoint (Llama, Mistral, Qwen 2,
/// Gemma: Hugging Face's names).
///
/// Each decoder layer `model.layers.{i}` has `input_layernorm` (before attention) and
/// `post_attention_layernorm` (before the MLP); `model.norm` follows the last one. All
/// are RMSNorm layers (a weight, no bias).
///
/// ```swift
/// let file = try SafeTensors(contentsOf: url)
/// for layer in try Llama.normLayers(from: file, eps: 1e-5) {
///     print(layer.name, layer.norm.dim)   // model.layers.0.input_layernorm 4096, ...
/// }
/// ```
public enum Llama {
    /// A named norm layer of a checkpoint.
    public struct NamedLayer: Sendable {
        /// The layer's name in the file, e.g. `model.layers.0.input_layernorm`.
        public let name: String
        /// The layer, with the file's weight.
        public let norm: RMSNorm
    }

    /// The number of decoder layers: the distinct `model.layers.{i}.` indices in the
    /// file (with or without the `model.` prefix), which must be exactly 0 ..< n.
    ///
    /// - Throws: `NormKitError.missingTensor(name:available:)` when the file has no
    ///   `model.layers.{i}.` tensors (not a Llama-family checkpoint), listing its norm
    ///   layers, and `NormKitError.invalidFile(format:offset:reason:)` when the
    ///   indices have a gap.
    public static func layerCount(in file: SafeTensors) throws(NormKitError) -> Int {
        try file.numberedBlockCount(group: "layers.", optionalPrefix: "model.", model: "Llama", unit: "layer",
                                    firstLayer: "model.layers.0.input_layernorm")
    }

    /// Every norm layer's name in model order: `model.layers.0.input_layernorm,
    /// model.layers.0.post_attention_layernorm, ..., model.norm` (2n + 1 names), spelled
    /// as in the file (with its `model.` prefix if it has one).
    ///
    /// - Throws: what ``layerCount(in:)`` throws, and
    ///   `NormKitError.missingTensor(name:available:)` for a layer the file lacks.
    public static func normLayerNames(in file: SafeTensors) throws(NormKitError) -> [String] {
        let n = try layerCount(in: file)
        var canonical: [String] = []
        canonical.reserveCapacity(2 * n + 1)
        for i in 0..<n {
            canonical.append("model.layers.\(i).input_layernorm")
            canonical.append("model.layers.\(i).post_attention_layernorm")
        }
        canonical.append("model.norm")
        return try file.resolveLayerNames(canonical, suffixes: ["weight"], candidates: candidates)
    }

    /// Every norm layer of the file in model order (see ``normLayerNames(in:)``): 65 for
    /// Llama 2 7B and Llama 3 8B (32 layers), 161 for Llama 3 70B.
    ///
    /// - Parameters:
    ///   - file: the checkpoint.
    ///   - eps: the model's `rms_norm_eps` (in its config.json; Llama 2 and 3: 1e-5).
    ///   - weightOffset: 1 for Gemma, else 0.
    /// - Throws: what ``normLayerNames(in:)`` and `RMSNorm.init(loading:from:eps:weightOffset:)` throw.
    public static func normLayers(from file: SafeTensors, eps: Float = 1e-6, weightOffset: Float = 0) throws(NormKitError) -> [NamedLayer] {
        var layers: [NamedLayer] = []
        for name in try normLayerNames(in: file) {
            layers.append(NamedLayer(name: name, norm: try RMSNorm(loading: name, from: file, eps: eps, weightOffset: weightOffset)))
        }
        return layers
    }

    /// The names `prefix` may have in a file: itself, then with a leading `model.`
    /// removed, or added when it has none.
    static func candidates(_ prefix: String) -> [String] {
        let m = "model."
        if prefix.hasPrefix(m) { return [prefix, String(prefix.dropFirst(m.count))] }
        return [prefix, m + prefix]
    }
}
