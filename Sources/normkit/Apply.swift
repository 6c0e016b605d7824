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
        abstract: "Normalise a .npy activation file with a LayerNorm from a safetensors checkpoint.",
        discussion: """
            Reads PREFIX.weight and PREFIX.bias (or PREFIX.gamma/PREFIX.beta) from the checkpoint; \
            a leading 'transformer.' in PREFIX is optional. The input's last dimension must be the \
            layer's size; the output is float32 .npy (version 1.0) of the same shape.

            Example: normkit apply --weights model.safetensors --prefix h.0.ln_1 --input x.npy --output y.npy
            """
    )

    @Option(help: "The .safetensors checkpoint.") var weights: String
    @Option(help: "The layer's name, e.g. h.0.ln_1 or ln_f ('normkit inspect' lists them).") var prefix: String
    @Option(help: "Input activations (.npy: <f4, <f8, <f2 or >f4; last dimension = the layer's size).") var input: String
    @Option(help: "Where to write the result (.npy, <f4).") var output: String
    @Option(help: "Added to the variance before the square root (GPT-2: 1e-5).") var eps: Float = 1e-5

    func run() throws {
        let file = try withPath(weights) { () throws(NormKitError) in try SafeTensors(contentsOf: URL(fileURLWithPath: weights)) }
        let norm = try withPath(weights) { () throws(NormKitError) in try LayerNorm(loading: prefix, from: file, eps: eps) }
        let x = try withPath(input) { () throws(NormKitError) in try Tensor(npyContentsOf: URL(fileURLWithPath: input)) }
        let y = try withPath(input) { () throws(NormKitError) in try norm(x) }
        try y.writeNPY(to: URL(fileURLWithPath: output))
        let parts = norm.usesBias ? "weight and bias" : "weight, no bias"
        print("\(prefix): LayerNorm(dim: \(norm.dim), eps: \(norm.eps)), \(parts)")
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
