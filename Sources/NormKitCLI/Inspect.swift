import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NormKit
import NormKitCLISupport
import NormKitIO

/// `normkit inspect`: what a checkpoint or activation file holds.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List a .safetensors file's tensors (name, dtype, shape) and its norm layers, or a .npy file's header.",
        discussion: "The file is validated completely; a malformed file is reported with the byte offset of the fault."
    )

    @Argument(help: "A .safetensors or .npy file (recognised by its first bytes, not its name).") var file: String

    func run() throws {
        // A pipe, FIFO or device is read as a stream: its first bytes must start an .npy
        // or safetensors file, and at most what its header declares is read.
        let bytes = try withPath(file) { () throws(NormKitError) in try FileInput.read(path: file, format: .npyOrSafeTensors) }
        if bytes.starts(with: [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]) {
            try inspectNPY(bytes)
        } else {
            try inspectSafeTensors(bytes)
        }
    }

    private func inspectNPY(_ bytes: Data) throws {
        let header = try withPath(file) { () throws(NormKitError) in try NPYHeader(npyData: bytes) }
        let count = header.shape.reduce(1, *)
        print("\(Self.shown(file)): .npy version \(header.version.major).\(header.version.minor), \(bytes.count) bytes")
        print("dtype \(header.dtype), \(header.fortranOrder ? "Fortran" : "C") order, shape \(header.shape) (\(count) elements)")
        if !NPYHeader.supportedDTypes.contains(header.dtype) {
            print("NormKit cannot read this dtype (it reads \(NPYHeader.supportedDTypes.joined(separator: ", ")))")
        } else if header.shape.isEmpty {
            print("NormKit cannot read a 0-d array (a Tensor has rank >= 1)")
        }
    }

    private func inspectSafeTensors(_ bytes: Data) throws {
        let st = try withPath(file) { () throws(NormKitError) in try SafeTensors(data: bytes) }
        print("\(Self.shown(file)): safetensors, \(st.names.count) tensors, \(st.byteCount) bytes")
        for key in st.metadata.keys.sorted() {
            print("metadata: \(Self.shown(key)) = \(Self.shown(st.metadata[key] ?? "", limit: 200))")
        }

        let infos = st.tensorInfos
        // Columns no wider than 48: one long name must not pad every other line.
        let nameWidth = min(48, max(4, infos.map { Self.shown($0.name).count }.max() ?? 0))
        print("")
        print("name".padded(to: nameWidth), "dtype".padded(to: 7), "shape")
        for info in infos {
            print(Self.shown(info.name).padded(to: nameWidth), info.dtype.rawValue.padded(to: 7), info.shape)
        }

        let norms = st.normLayerNames
        print("")
        print("norm layers (\(norms.count)):")
        for name in norms {
            // The same names `normkit apply` (LayerNorm(loading:from:)) reads.
            let line: String
            do {
                // Every check `apply` makes before reading data (names, dtypes, shapes).
                let found = try st.normLayerParameters(for: name)
                line = "\(found.weight.dtype.rawValue.padded(to: 5)) dim \(found.weight.shape[0]), \(found.bias != nil ? "weight and bias: LayerNorm" : "weight only: RMSNorm (Llama family) or LayerNorm without bias")"
            } catch {
                line = "not loadable: \(Self.shown("\(error)", limit: 300))"
            }
            print("  \(Self.shown(name).padded(to: nameWidth)) \(line)")
        }
        if let gpt2 = try? GPT2.normLayerNames(in: st), let blocks = try? GPT2.blockCount(in: st) {
            print("")
            print("GPT-2 layout: \(blocks) blocks, \(gpt2.count) norm layers in model order (\(Self.shown(gpt2.first ?? "")) ... \(Self.shown(gpt2.last ?? "")))")
        }
        if let llama = try? Llama.normLayerNames(in: st), let layers = try? Llama.layerCount(in: st) {
            print("")
            print("Llama layout: \(layers) layers, \(llama.count) RMSNorm layers in model order (\(Self.shown(llama.first ?? "")) ... \(Self.shown(llama.last ?? "")))")
        }
    }

    /// `text` safe for a terminal and bounded: NormKit's one sanitiser, the same every
    /// error message goes through (control characters escaped; beyond `limit` characters
    /// the middle is cut and the length given). The output of `inspect` is thus at most a
    /// constant times its input (a name's bytes appear in the file at least once).
    static func shown(_ text: String, limit: Int = 120) -> String {
        NormKitError.sanitized(text, limit: limit)
    }
}
