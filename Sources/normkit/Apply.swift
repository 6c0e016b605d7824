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
    @Option(help: "Input activations (.npy: <f4, <f8, <f2 or >f4; last dimension = the layer's size); - reads standard input.")
    var input: String
    @Option(help: "Where to write the result (.npy, <f4); - writes standard output. Must not be one of the inputs.")
    var output: String
    // Unconditional, so `--eps -1` is read as a value (and refused as negative), not as a flag.
    @Option(parsing: .unconditional, help: "Added to the variance before the square root (GPT-2: 1e-5).")
    var eps: String = "1e-5"

    func run() throws {
        let eps = try CommandInput.epsilon(self.eps)
        try CommandInput.checkOutput(("--output", output), isNotAnyOf: [("--weights", weights), ("--input", input)])
        let file = try withPath(weights) { () throws(NormKitError) in try SafeTensors(contentsOf: URL(fileURLWithPath: weights)) }
        let norm = try withPath(weights) { () throws(NormKitError) in try LayerNorm(loading: prefix, from: file, eps: eps) }
        let inputName = input == "-" ? "standard input" : input
        let stdinBytes = input == "-" ? try CommandInput.readStandardInput() : nil
        let x = try withPath(inputName) { () throws(NormKitError) in
            if let stdinBytes { return try Tensor(npyData: stdinBytes) }
            return try Tensor(npyContentsOf: URL(fileURLWithPath: input))
        }
        let y = try withPath(inputName) { () throws(NormKitError) in try norm(x) }
        if output == "-" {
            try CommandInput.writeStandardOutput(y.npyData())
        } else {
            try y.writeNPY(to: URL(fileURLWithPath: output))
        }
        // The summary goes to stderr when the data goes to stdout.
        let parts = norm.usesBias ? "weight and bias" : "weight, no bias"
        let summary = """
            \(prefix): LayerNorm(dim: \(norm.dim), eps: \(norm.eps)), \(parts)
            \(inputName) \(x.shape) -> \(output == "-" ? "standard output" : output) \(y.shape)

            """
        if output == "-" { writeStderr(summary) } else { print(summary, terminator: "") }
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
