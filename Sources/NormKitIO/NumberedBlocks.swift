// The numbered blocks of a transformer checkpoint (GPT-2's `h.{i}.`, Llama's
// `model.layers.{i}.`): how many there are, read from the file and never assumed.
import NormKit

extension SafeTensors {
    /// The number of distinct `{group}{i}.` indices among the file's tensor names (each
    /// name with or without `optionalPrefix`), which must be exactly 0 ..< n.
    ///
    /// - Parameters:
    ///   - model: the model family, for messages ("GPT-2").
    ///   - unit: what one block is called, for messages ("block").
    ///   - firstLayer: the norm layer reported missing when there is no block at all.
    func numberedBlockCount(
        group: String, optionalPrefix: String, model: String, unit: String, firstLayer: String
    ) throws(NormKitError) -> Int {
        var indices = Set<Int>()
        for name in names {
            var rest = Substring(name)
            if rest.hasPrefix(optionalPrefix) { rest = rest.dropFirst(optionalPrefix.count) }
            guard rest.hasPrefix(group) else { continue }
            rest = rest.dropFirst(group.count)
            guard let dot = rest.firstIndex(of: "."), let i = NaturalOrder.number(rest[..<dot]) else { continue }
            indices.insert(i)
        }
        guard !indices.isEmpty else {
            throw .missingTensor(name: firstLayer, available: normLayerNames)
        }
        let n = indices.count
        if let missing = (0..<n).first(where: { !indices.contains($0) }) {
            let top = indices.max() ?? 0
            throw .invalidFile(format: "safetensors", offset: nil,
                               reason: "\(model) \(unit)s must be numbered \(group)0 ..< \(group)\(n): found \(n) \(unit) indices up to \(group)\(top) but no \(group)\(missing)")
        }
        return n
    }

    /// Each canonical layer name as the file spells it: the first of `candidates(name)`
    /// for which the file has one of `name.{suffix}`.
    ///
    /// - Throws: `NormKitError.missingTensor(name:available:)` for a layer the file lacks.
    func resolveLayerNames(
        _ canonical: [String], suffixes: [String], candidates: (String) -> [String]
    ) throws(NormKitError) -> [String] {
        var found: [String] = []
        found.reserveCapacity(canonical.count)
        for name in canonical {
            guard let actual = candidates(name).first(where: { c in suffixes.contains { contains(c + "." + $0) } }) else {
                throw .missingTensor(name: name, available: normLayerNames)
            }
            found.append(actual)
        }
        return found
    }
}
