import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NormKit
import NormKitCLISupport
import NormKitIO

/// `normkit apply`: one checkpoint LayerNorm over a .npy activation file.
struct Apply: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Normalise a .npy activation file with a LayerNorm or RMSNorm from a safetensors checkpoint.",
        discussion: """
            Reads PREFIX.weight and PREFIX.bias (or PREFIX.gamma/PREFIX.beta) from the checkpoint; \
            a leading 'transformer.' in PREFIX is optional. The input's last dimension must be the \
            layer's size; the output is .npy (version 1.0) of the same shape, float16 (<f2) for a \
            float16 input (normalised in float32 and rounded once) and float32 (<f4) for any other, \
            unless --output-dtype f4 asks for float32.

            A weight-only layer (Llama-family files: model.layers.0.input_layernorm, model.norm) is \
            refused unless --kind says what it is: --kind rms for an RMSNorm, --kind layer for a LayerNorm \
            without bias. --kind rms refuses a layer that has a bias.

            Example: normkit apply --weights model.safetensors --prefix h.0.ln_1 --input x.npy --output y.npy
            Example: normkit apply --kind rms --eps 1e-5 --weights llama.safetensors --prefix model.norm --input x.npy --output y.npy
            """
    )

    @Option(help: "The .safetensors checkpoint.") var weights: String
    @Option(help: "The layer's name, e.g. h.0.ln_1 or ln_f ('normkit inspect' lists them).") var prefix: String
    @Option(help: "Input activations (.npy: <f4, <f8, <f2 or >f4; last dimension = the layer's size); - reads standard input.")
    var input: String
    @Option(help: "Where to write the result (.npy: <f2 for a float16 input, else <f4); - writes standard output. Must not be one of the inputs.")
    var output: String
    // Unconditional, so `--eps -1` is read as a value (and refused as negative), not as a flag.
    @Option(parsing: .unconditional, help: "Added to the variance (or mean square) before the square root (default: 1e-5 for a LayerNorm, GPT-2's; 1e-6 for an RMSNorm).") var eps: String?
    @Option(help: "The layer's kind: 'layer' (LayerNorm) or 'rms' (RMSNorm, Llama-family). Required for a weight-only layer.") var kind: NormKind?
    @Option(parsing: .unconditional, help: "RMSNorm only (--kind rms): the scale is weight-offset + weight (1 for Gemma).")
    var weightOffset: String?
    @Option(help: "The output's element type: 'same' (float16 for a <f2/>f2 input, float32 otherwise) or 'f4' (float32 always).")
    var outputDtype: OutputDType = .same
    @Flag(help: "Read float64 input values beyond Float's range (3.4e38) as +-infinity, which makes their rows NaN, instead of refusing the input.")
    var allowOverflow = false

    func validate() throws {
        if let weightOffset {
            guard kind == .rms else {
                throw ValidationError("--weight-offset applies to an RMSNorm only; give --kind rms with it (a LayerNorm has no weight offset)")
            }
            _ = try CommandInput.finiteFloat(weightOffset, flag: "--weight-offset", example: "1")
        }
        if let eps { _ = try CommandInput.epsilon(eps) }
    }

    func run() throws {
        let eps = try self.eps.map { try CommandInput.epsilon($0) }
        let weightOffset = try self.weightOffset.map { try CommandInput.finiteFloat($0, flag: "--weight-offset", example: "1") } ?? 0
        // An output that is the same file as standard output (/dev/stdout, /proc/self/fd/1,
        // a link to either, or the very file stdout is redirected to) is written as `-`:
        // through fd 1, with the summary on stderr, never mixed into the data.
        let toStdout = output == "-" || CommandInput.isStandardOutput(output)
        try CommandInput.checkOutput(("--output", output), isNotAnyOf: [("--weights", weights), ("--input", input)])
        let file = try withPath(weights) { () throws(NormKitError) in
            try SafeTensors(data: FileInput.read(path: weights, format: .safetensors))
        }
        let norm = try withPath(weights) { () throws(NormKitError) in
            try LoadedNorm.load(prefix, from: file, kind: kind, eps: eps, weightOffset: weightOffset)
        }
        let inputName = input == "-" ? "standard input" : input
        let bytes = try withPath(inputName) { () throws(NormKitError) in
            try FileInput.read(path: input == "-" ? nil : input, format: .npy)
        }
        // Before converting: x, a Fortran-order staging copy, y and y's .npy bytes, 4
        // bytes each per element (a stream's own bytes were admitted when it was read).
        let header = try withPath(inputName) { () throws(NormKitError) in try NPYHeader(npyData: bytes) }
        try CommandInput.checkFitsInMemory(
            elements: try CommandInput.elementCount(header.shape, what: NormKitError.sanitized(inputName)),
            bytesPerElement: 16, what: "\(NormKitError.sanitized(inputName)) \(header.shape)")
        // Float32 out (any input but float16, or --output-dtype f4).
        func normaliseAsFloat() throws -> (input: [Int], output: [Int]) {
            let x = try withPath(inputName) { () throws(NormKitError) in try Tensor(npyData: bytes, allowingOverflow: allowOverflow) }
            let y = try withPath(inputName) { () throws(NormKitError) in try norm.apply(x) }
            if toStdout {
                try StandardOutput.write(y.npyData())
            } else {
                try y.writeNPY(to: URL(fileURLWithPath: output))
            }
            return (x.shape, y.shape)
        }
        let halfInput = header.dtype == "<f2" || header.dtype == ">f2"
        let shapes: (input: [Int], output: [Int])
        var outputType = halfInput ? " float32" : ""
        #if !(os(macOS) && arch(x86_64))
        if halfInput && outputDtype == .same {
            // Float16 in, Float16 out: the 2-byte patterns read as they are, the rows
            // normalised in float32 and rounded once (the library's half form).
            let x = try withPath(inputName) { () throws(NormKitError) in try HalfTensor<Float16>(npyData: bytes) }
            let y = try withPath(inputName) { () throws(NormKitError) in try norm.normalization.forward(x) }
            if toStdout {
                try StandardOutput.write(y.npyData())
            } else {
                try y.writeNPY(to: URL(fileURLWithPath: output))
            }
            shapes = (x.shape, y.shape)
            outputType = " float16"
        } else {
            shapes = try normaliseAsFloat()
        }
        #else
        shapes = try normaliseAsFloat()  // no Float16 on this platform: float16 files are read as Float
        #endif
        // The summary goes to stderr when the data goes to stdout.
        let shown = { (text: String) in NormKitError.sanitized(text) }
        let summary = """
            \(shown(prefix)): \(norm.summary)
            \(shown(inputName)) \(shapes.input) -> \(output == "-" ? "standard output" : shown(output)) \(shapes.output)\(outputType)

            """
        if toStdout { writeStderr(summary) } else { print(summary, terminator: "") }
    }
}

/// A NormKit error about a file, with the file's path in front.
struct FileError: Error, CustomStringConvertible {
    var path: String
    var error: NormKitError
    var description: String {
        if case .io = error { return error.description }  // already names the path
        return "\(NormKitError.sanitized(path)): \(error)"
    }
}

/// Runs `body`, prefixing any error with `path` so the user knows which file is at fault.
func withPath<T>(_ path: String, _ body: () throws(NormKitError) -> T) throws(FileError) -> T {
    do { return try body() } catch { throw FileError(path: path, error: error) }
}
