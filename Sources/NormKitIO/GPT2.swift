// GPT-2's layer names: blocks h.0 ... h.{n-1}, each with ln_1 (before attention) and
// ln_2 (before the MLP), then the final ln_f. 12 blocks in GPT-2 small, 24 in medium,
// 36 in large, 48 in XL: the count is read from the file, never assumed.
import NormKit

/// The normalisation layers of a GPT-2 checkpoint.
///
/// ```swift
/// let file = try SafeTensors(contentsOf: url)
/// for layer in try GPT2.normLayers(from: file) {     // h.0.ln_1, h.0.ln_2, ..., ln_f
///     print(layer.name, layer.norm.dim)
/// }
/// ```
public enum GPT2 {
    /// The number of transformer blocks: the distinct `h.{i}.` indices in the file
    /// (with or without a `transformer.` prefix), which must be exactly 0 ..< n.
    ///
    /// - Throws: `NormKitError.missingTensor(name:available:)` when the file has no
    ///   `h.{i}.` tensors (not a GPT-2 checkpoint), listing its norm layers, and
    ///   `NormKitError.invalidFile(format:offset:reason:)` when the indices have a gap.
    public static func blockCount(in file: SafeTensors) throws(NormKitError) -> Int {
        try file.numberedBlockCount(group: "h.", optionalPrefix: "transformer.", model: "GPT-2", unit: "block",
                                    firstLayer: "h.0.ln_1")
    }

    /// Every norm layer's name in model order, `h.0.ln_1, h.0.ln_2, h.1.ln_1, ...,
    /// h.{n-1}.ln_2, ln_f` (2n + 1 names), spelled as in the file (with its
    /// `transformer.` prefix if it has one).
    ///
    /// - Throws: what ``blockCount(in:)`` throws, and
    ///   `NormKitError.missingTensor(name:available:)` for a layer the file lacks.
    public static func normLayerNames(in file: SafeTensors) throws(NormKitError) -> [String] {
        let n = try blockCount(in: file)
        var canonical: [String] = []
        canonical.reserveCapacity(2 * n + 1)
        for i in 0..<n {
            canonical.append("h.\(i).ln_1")
            canonical.append("h.\(i).ln_2")
        }
        canonical.append("ln_f")
        return try file.resolveLayerNames(canonical, suffixes: ["weight", "gamma"],
                                          candidates: SafeTensors.prefixCandidates)
    }
}
