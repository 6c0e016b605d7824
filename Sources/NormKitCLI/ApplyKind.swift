import ArgumentParser
import NormKit
import NormKitCLISupport
import NormKitIO

/// `normkit apply --kind`: which norm a checkpoint layer is.
enum NormKind: String, ExpressibleByArgument, CaseIterable {
    /// LayerNorm: mean subtracted, weight and (usually) bias. GPT-2, BERT.
    case layer
    /// RMSNorm: no mean, weight only. Llama, Mistral, Qwen, Gemma, T5.
    case rms
}

/// `normkit apply --output-dtype`: the element type of the output file.
enum OutputDType: String, ExpressibleByArgument, CaseIterable {
    /// The input's: float16 (`<f2`) for a float16 input, float32 (`<f4`) for any other.
    case same
    /// float32 (`<f4`) whatever the input.
    case f4
}

/// A norm layer loaded for `apply`: what it computes and how to describe it.
struct LoadedNorm {
    var apply: (Tensor) throws(NormKitError) -> Tensor
    /// The layer itself, for the half-precision form (`forward(_: HalfTensor<T>)`).
    var normalization: any Normalization
    var summary: String

    /// Loads `prefix` from `file` as `kind`. Without a kind, a layer with a bias is a
    /// LayerNorm and a weight-only one is refused (it is an RMSNorm in Llama-family
    /// files, or a bias-free LayerNorm: only the user knows which).
    static func load(
        _ prefix: String, from file: SafeTensors, kind: NormKind?, eps: Float?, weightOffset: Float
    ) throws(NormKitError) -> LoadedNorm {
        switch kind {
        case .rms:
            let norm: RMSNorm
            do { norm = try RMSNorm(loading: prefix, from: file, eps: eps ?? 1e-6, weightOffset: weightOffset) } catch {
                if case .layerKindMismatch = error {
                    throw .layerKindMismatch(name: prefix, reason: "it has a bias, so it is a LayerNorm, not an RMSNorm: use --kind layer (or leave --kind out)")
                }
                throw error
            }
            return LoadedNorm(apply: { x throws(NormKitError) in try norm(x) }, normalization: norm,
                              summary: "RMSNorm(dim: \(norm.dim), eps: \(norm.eps), weightOffset: \(norm.weightOffset)), weight only")
        case .layer, nil:
            let norm: LayerNorm
            do { norm = try LayerNorm(loading: prefix, from: file, eps: eps ?? 1e-5, requireBias: kind == nil) } catch {
                if case .layerKindMismatch = error {
                    throw .layerKindMismatch(name: prefix, reason: "it has a weight and no bias: an RMSNorm in Llama-family files (Llama, Mistral, Qwen, Gemma, T5), or a LayerNorm without bias. Say which with --kind rms or --kind layer")
                }
                throw error
            }
            return LoadedNorm(apply: { x throws(NormKitError) in try norm(x) }, normalization: norm,
                              summary: "LayerNorm(dim: \(norm.dim), eps: \(norm.eps)), \(norm.usesBias ? "weight and bias" : "weight, no bias")")
        }
    }
}
