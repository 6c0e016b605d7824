import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NormKit

/// `normkit apply`: one checkpoint LayerNorm over a .npy activation file.
struct Apply: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Normalise a .npy activation file with a LayerNorm or RMSNorm from a safetensors checkpoint.",
        discussion: """
            Reads PREFIX.weight and PREFIX.bias (or PREFIX.gamma/PREFIX.beta) from the checkpoint; \
            a leading 'transformer.' in PREFIX is optional. The input's last dimension must be the \
            layer's size; the output is float32 .npy (version 1.0) of the same shape.

            A weight-only layer (Llama-family files: model.layers.0.input_layernorm, model.norm) is \
            refused unless --kind says what it is: --kind rms for an RMSNorm, --kind layer for a LayerNorm \
            without bias. --kind rms refuses a layer that has a bias.

            Example: normkit apply --weights model.safetensors --prefix h.0.ln_1 --input x.npy --output y.npy
            Example: normkit apply --kind rms --eps 1e-5 --weights llama.safetensors --prefix model.norm --input x.npy --output y.npy
            """
    )

    @Option(help: "The .safetensors checkpoint.") var weights: String
    @Option(help: "The layer's name, e.g. h.0.ln_1 or ln_f ('normkit inspect' lists them).") var prefix: String
    @Option(help: "Input activations (.npy: <f4, <f8, <f2 or >f4; last dimension = the layer's size).") var input: String
    @Option(help: "Where to write the result (.npy, <f4).") var output: String
    @Option(help: "Added to the variance (or mean square) before the square root (default: 1e-5 for a LayerNorm, GPT-2's; 1e-6 for an RMSNorm).") var eps: Float?
    @Option(help: "The layer's kind: 'layer' (LayerNorm) or 'rms' (RMSNorm, Llama-family). Required for a weight-only layer.") var kind: NormKind?
    @Option(help: "RMSNorm only: the scale is weight-offset + weight (1 for Gemma).") var weightOffset: Float = 0

    func run() throws {
        let file = try withPath(weights) { () throws(NormKitError) in try SafeTensors(contentsOf: URL(fileURLWithPath: weights)) }
        let norm = try withPath(weights) { () throws(NormKitError) in
            try LoadedNorm.load(prefix, from: file, kind: kind, eps: eps, weightOffset: weightOffset)
        }
        let x = try withPath(input) { () throws(NormKitError) in try Tensor(npyContentsOf: URL(fileURLWithPath: input)) }
        let y = try withPath(input) { () throws(NormKitError) in try norm.apply(x) }
        try y.writeNPY(to: URL(fileURLWithPath: output))
        print("\(prefix): \(norm.summary)")
        print("\(input) \(x.shape) -> \(output) \(y.shape)")
    }
}

/// A NormKit error about a file, with the file's path in front.
struct FileError: Error, CustomStringConvertible {
    var path: String
    var error: NormKitError
    var description: String {
        if case .io = error { return error.description }  // already names the path
        return "\(path): \(error)"
    }
}

/// Runs `body`, prefixing any error with `path` so the user knows which file is at fault.
func withPath<T>(_ path: String, _ body: () throws(NormKitError) -> T) throws(FileError) -> T {
    do { return try body() } catch { throw FileError(path: path, error: error) }
}
