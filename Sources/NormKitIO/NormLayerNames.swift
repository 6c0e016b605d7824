// Finding the normalisation layers of a checkpoint by name, without reading any data.
import NormKit

extension SafeTensors {
    /// The name prefixes of the file's normalisation layers, in natural order
    /// (`h.2` before `h.10`), as they appear in the file.
    ///
    /// A prefix `p` counts when the file has a rank-1 `p.weight` or `p.gamma` and the
    /// last component of `p` contains `norm` or starts with `ln` (any case): GPT-2's
    /// `ln_1`, `ln_2`, `ln_f`; BERT's `LayerNorm`; `layer_norm`, `input_layernorm`,
    /// `final_layer_norm`, `norm`, ... Linear and embedding weights are rank 2 and never match.
    public var normLayerNames: [String] {
        var found: [String] = []
        for info in tensorInfos where info.shape.count == 1 {
            guard let prefix = Self.owner(of: info.name, suffixes: ["weight", "gamma"]),
                  Self.looksLikeNorm(prefix) else { continue }
            // A file holding both p.weight and p.gamma lists p once.
            if info.name.hasSuffix(".gamma") && contains(prefix + ".weight") { continue }
            found.append(prefix)
        }
        return found.sorted(by: NaturalOrder.less)
    }

    /// The tensors a norm layer called `prefix` reads: `prefix.weight` and, when the
    /// file has it, `prefix.bias`; or the older `prefix.gamma` and `prefix.beta`. The
    /// prefix matches with or without a leading `transformer.` (`LayerNorm.init(loading:from:eps:requireBias:)`).
    ///
    /// A layer with names from both conventions (`ln.weight` with `ln.beta`, `ln.gamma`
    /// with `ln.bias`, or both weights) is refused rather than guessed: `ln.beta` next to
    /// `ln.weight` could be its bias or a stray tensor. `normkit inspect` and `normkit
    /// apply` both go through this, so they agree.
    ///
    /// - Throws: `NormKitError.missingTensor(name:available:)` listing the file's norm
    ///   layers when there is neither weight; `NormKitError.invalidFile(format:offset:reason:)`
    ///   for an ambiguous layer.
    public func normParameterNames(for prefix: String) throws(NormKitError) -> (weight: String, bias: String?) {
        for candidate in Self.prefixCandidates(prefix) {
            let present = ["weight", "bias", "gamma", "beta"].filter { contains("\(candidate).\($0)") }
            guard present.contains("weight") || present.contains("gamma") else { continue }
            let modern = present.contains("weight") || present.contains("bias")
            let older = present.contains("gamma") || present.contains("beta")
            if modern && older {
                let names = present.map { "\(candidate).\($0)" }.joined(separator: ", ")
                throw .invalidFile(
                    format: "safetensors", offset: nil,
                    reason: "layer '\(candidate)' is ambiguous: the file has \(names); NormKit reads either weight and bias or gamma and beta, not a mix")
            }
            let (w, b) = modern ? ("weight", "bias") : ("gamma", "beta")
            return ("\(candidate).\(w)", present.contains(b) ? "\(candidate).\(b)" : nil)
        }
        throw .missingTensor(name: prefix, available: normLayerNames)
    }

    /// The weight and bias of the norm layer `prefix`, after every check that
    /// `LayerNorm.init(loading:from:eps:requireBias:)` makes before it reads any data: the
    /// names (``normParameterNames(for:)``), dtypes that ``tensor(named:allowingOverflow:)``
    /// converts, a weight of shape `[dim]` with `dim >= 1`, and a bias of the same shape.
    /// The loader goes through it, and so does `normkit inspect`, so a layer that inspect
    /// lists as loadable is one that `normkit apply` can load.
    ///
    /// - Throws: what ``normParameterNames(for:)`` throws;
    ///   `NormKitError.unsupported(format:reason:)` for a dtype NormKit does not convert;
    ///   `NormKitError.invalidArgument(name:expected:actual:)` for a weight that is not
    ///   `[dim]`; `NormKitError.parameterShapeMismatch(name:expected:actual:)` for a bias
    ///   of another shape.
    public func normLayerParameters(for prefix: String) throws(NormKitError) -> (weight: TensorInfo, bias: TensorInfo?) {
        let names = try normParameterNames(for: prefix)
        guard let weight = info(named: names.weight) else { throw .missingTensor(name: names.weight, available: self.names) }
        _ = try Self.readable(weight)
        guard weight.shape.count == 1, weight.shape[0] >= 1 else {
            throw .invalidArgument(name: weight.name, expected: "a norm layer's weight of shape [dim], dim >= 1",
                                   actual: "shape \(weight.shape)")
        }
        guard let biasName = names.bias else { return (weight, nil) }
        guard let bias = info(named: biasName) else { throw .missingTensor(name: biasName, available: self.names) }
        _ = try Self.readable(bias)
        guard bias.shape == weight.shape else {
            throw .parameterShapeMismatch(name: biasName, expected: weight.shape, actual: bias.shape)
        }
        return (weight, bias)
    }

    /// `name` without its `.suffix` (for one of `suffixes`), or nil.
    static func owner(of name: String, suffixes: [String]) -> String? {
        for s in suffixes where name.hasSuffix("." + s) {
            let p = String(name.dropLast(s.count + 1))
            return p.isEmpty ? nil : p
        }
        return nil
    }

    static func looksLikeNorm(_ prefix: String) -> Bool {
        let last = (prefix.split(separator: ".", omittingEmptySubsequences: false).last ?? "").lowercased()
        return last.contains("norm") || last.hasPrefix("ln")
    }

    /// The names `prefix` may have in a file: itself, then the same name with a leading
    /// `transformer.` removed, or added when it has none (GPT-2 checkpoints exist both
    /// ways: `GPT2Model` without the prefix, `GPT2LMHeadModel` with it).
    static func prefixCandidates(_ prefix: String) -> [String] {
        let t = "transformer."
        if prefix.hasPrefix(t) { return [prefix, String(prefix.dropFirst(t.count))] }
        return [prefix, t + prefix]
    }
}

/// Orders dotted names component by component, numbers numerically:
/// `h.2.ln_1 < h.10.ln_1`, and `h.11.ln_2 < ln_f`.
enum NaturalOrder {
    static func less(_ a: String, _ b: String) -> Bool {
        let x = a.split(separator: ".", omittingEmptySubsequences: false)
        let y = b.split(separator: ".", omittingEmptySubsequences: false)
        for (p, q) in zip(x, y) where p != q {
            if let m = number(p), let n = number(q), m != n { return m < n }
            return p < q
        }
        if x.count != y.count { return x.count < y.count }
        return a < b
    }

    /// A component of 1 to 18 decimal digits as a number (18 digits always fit in Int).
    static func number(_ s: Substring) -> Int? {
        guard !s.isEmpty, s.utf8.count <= 18, s.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int(s)
    }
}
