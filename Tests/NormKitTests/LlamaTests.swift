import Foundation
import NormKit
import NormKitIO
import NormKitTesting
import Testing

@Suite("Llama checkpoints and RMSNorm loading")
struct LlamaTests {
    /// The fixture script's 7 norm layers (3 decoder layers) in model order.
    static let names = (0..<3).flatMap { ["model.layers.\($0).input_layernorm", "model.layers.\($0).post_attention_layernorm"] }
        + ["model.norm"]

    /// The fixture script's closed form for norm layer k (model order), dim 8.
    static func weight(_ k: Int) -> [Float] { (0..<8).map { Float(1 + Double(k) / 32 + Double($0) / 128) } }

    @Test(arguments: ["llama_f32.safetensors", "llama_f16.safetensors", "llama_bf16.safetensors"])
    func fixtureLoadsEveryNormLayerInModelOrder(fixture: String) throws {
        let file = try SafeTensors(contentsOf: Fixtures.url(fixture))
        #expect(try Llama.layerCount(in: file) == 3)
        #expect(try Llama.normLayerNames(in: file) == Self.names)
        let layers = try Llama.normLayers(from: file, eps: 1e-5)
        #expect(layers.map(\.name) == Self.names)
        for (k, layer) in layers.enumerated() {
            #expect(layer.norm.dim == 8 && layer.norm.eps == 1e-5 && layer.norm.weightOffset == 0)
            #expect(layer.norm.weight.scalars == Self.weight(k), "\(fixture) \(layer.name)")
        }
        // The file's norm layers are all weight-only; none is taken for a LayerNorm.
        #expect(file.normLayerNames.sorted() == Self.names.sorted())
        for name in Self.names {
            #expect(throws: NormKitError.self) { try LayerNorm(loading: name, from: file) }
        }
    }

    @Test func unprefixedNamesLoadTheSameLayers() throws {
        let file = try SafeTensors(contentsOf: Fixtures.url("llama_model_unprefixed.safetensors"))
        let names = try Llama.normLayerNames(in: file)
        #expect(names == Self.names.map { String($0.dropFirst("model.".count)) })
        let a = try RMSNorm(loading: "model.norm", from: file)
        let b = try RMSNorm(loading: "norm", from: file)
        #expect(a.weight == b.weight && a.weight.scalars == Self.weight(6))
    }

    @Test func gemmaOffsetAndEpsPassThrough() throws {
        let file = try SafeTensors(contentsOf: Fixtures.url("llama_f32.safetensors"))
        let norm = try RMSNorm(loading: "model.norm", from: file, eps: 1e-5, weightOffset: 1)
        #expect(norm.weightOffset == 1 && norm.eps == 1e-5)
        let layers = try Llama.normLayers(from: file, weightOffset: 1)
        #expect(layers.allSatisfy { $0.norm.weightOffset == 1 && $0.norm.eps == 1e-6 })
    }

    @Test func aLayerWithABiasIsRefusedAsRMSNorm() throws {
        let file = try SafeTensors(contentsOf: Fixtures.url("gpt2_small_shaped.safetensors"))
        let error = #expect(throws: NormKitError.self) { try RMSNorm(loading: "h.0.ln_1", from: file) }
        guard case .layerKindMismatch(let name, let reason) = error else {
            Issue.record("expected layerKindMismatch, got \(String(describing: error))")
            return
        }
        #expect(name == "h.0.ln_1")
        #expect(reason.contains("h.0.ln_1.bias") && reason.contains("LayerNorm(loading:from:)"), "\(reason)")
        let gamma = try SafeTensors(data: SafeTensors.encode(["ln.gamma": Tensor.ones([4]), "ln.beta": Tensor.zeros([4]),
                                                                "ln.weight": Tensor.ones([4])]))
        #expect(throws: NormKitError.self) { try RMSNorm(loading: "ln", from: gamma) }
    }

    @Test func missingAndMalformedLayers() throws {
        let gpt2 = try SafeTensors(contentsOf: Fixtures.url("gpt2_small_shaped.safetensors"))
        #expect(throws: NormKitError.self) { try Llama.normLayerNames(in: gpt2) }
        #expect(throws: NormKitError.self) { try RMSNorm(loading: "model.norm", from: gpt2) }

        var tensors: [String: Tensor] = [:]
        for name in Self.names { tensors[name + ".weight"] = Tensor.ones([8]) }
        // A gap: layers 0 and 2 only.
        var gap = tensors
        gap = gap.filter { !$0.key.hasPrefix("model.layers.1.") }
        let gapFile = try SafeTensors(data: SafeTensors.encode(gap))
        let gapError = #expect(throws: NormKitError.self) { try Llama.layerCount(in: gapFile) }
        #expect("\(gapError.map { "\($0)" } ?? "")".contains("no layers.1"))
        // A decoder layer without its post-attention norm.
        var missing = tensors
        missing["model.layers.1.post_attention_layernorm.weight"] = nil
        missing["model.layers.1.mlp.down_proj.weight"] = Tensor.ones([8, 8])
        let missingFile = try SafeTensors(data: SafeTensors.encode(missing))
        let missingError = #expect(throws: NormKitError.self) { try Llama.normLayers(from: missingFile) }
        guard case .missingTensor(let name, _) = missingError else {
            Issue.record("expected missingTensor, got \(String(describing: missingError))")
            return
        }
        #expect(name == "model.layers.1.post_attention_layernorm")
        // A weight of rank 2.
        let rank2 = try SafeTensors(data: SafeTensors.encode(["model.norm.weight": Tensor.ones([2, 4])]))
        #expect(throws: NormKitError.self) { try RMSNorm(loading: "model.norm", from: rank2) }
    }

    /// Layer 0 of the F32, F16 and BF16 files over the fixture activations, against
    /// NumPy's float64 RMSNorm (rounded to float32) and NormKit's reference.
    @Test(arguments: ["llama_f32.safetensors", "llama_f16.safetensors", "llama_bf16.safetensors"])
    func applyMatchesNumPy(fixture: String) throws {
        let file = try SafeTensors(contentsOf: Fixtures.url(fixture))
        let norm = try RMSNorm(loading: "model.layers.0.input_layernorm", from: file, eps: 1e-5)
        let x = try Tensor(npyContentsOf: Fixtures.url("llama_activations.npy"))
        let y = try norm(x)
        let numpy = try Tensor(npyContentsOf: Fixtures.url("llama_l0_input_rms_expected.npy"))
        #expect(Reference.maxRowError(y, expected: numpy.scalars.map(Double.init)) <= 2e-6)
        let reference = try Reference.rmsNormDouble(x, weight: norm.weight, eps: 1e-5)
        #expect(Reference.maxRowError(y, expected: reference) <= forwardBound)
    }
}

/// `normkit apply --kind` and `normkit inspect` on the fixtures, through the built CLI.
@Suite("normkit apply and inspect with RMSNorm layers")
struct RMSNormCLITests {
    /// The `normkit` executable SwiftPM built beside the test bundle.
    static var executable: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("normkit")
    }

    static func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        try ChildProcess.run(executable.path, arguments)
    }

    static func apply(_ kind: [String], weights: String, prefix: String, input: String, output: URL) throws -> (status: Int32, output: String) {
        try run(["apply"] + kind + ["--weights", Fixtures.url(weights).path, "--prefix", prefix,
                                    "--input", Fixtures.url(input).path, "--output", output.path])
    }

    @Test func applyKindRules() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.executable.path),
                     "normkit not built at \(Self.executable.path)")
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("y.npy")
        let layer0 = "model.layers.0.input_layernorm"

        // A weight-only layer without --kind: refused, and nothing written.
        let refused = try Self.apply([], weights: "llama_f32.safetensors", prefix: layer0, input: "llama_activations.npy", output: out)
        #expect(refused.status != 0)
        #expect(refused.output.contains("--kind rms") && refused.output.contains("--kind layer"), "\(refused.output)")
        #expect(!FileManager.default.fileExists(atPath: out.path))

        // --kind rms on a layer with a bias: refused.
        let biased = try Self.apply(["--kind", "rms"], weights: "gpt2_small_shaped.safetensors", prefix: "h.0.ln_1",
                                    input: "gpt2_activations.npy", output: out)
        #expect(biased.status != 0)
        #expect(biased.output.contains("LayerNorm") && biased.output.contains("--kind layer"), "\(biased.output)")
        #expect(!FileManager.default.fileExists(atPath: out.path))

        // --kind rms on the Llama layer: NumPy's answer.
        let ok = try Self.apply(["--kind", "rms", "--eps", "1e-5"], weights: "llama_bf16.safetensors", prefix: layer0,
                                input: "llama_activations.npy", output: out)
        #expect(ok.status == 0, "\(ok.output)")
        let y = try Tensor(npyContentsOf: out)
        let numpy = try Tensor(npyContentsOf: Fixtures.url("llama_l0_input_rms_expected.npy"))
        #expect(Reference.maxRowError(y, expected: numpy.scalars.map(Double.init)) <= 2e-6)

        // --kind layer on the weight-only layer: a LayerNorm without bias, on purpose.
        let layer = try Self.apply(["--kind", "layer"], weights: "llama_f32.safetensors", prefix: layer0,
                                   input: "llama_activations.npy", output: out)
        #expect(layer.status == 0 && layer.output.contains("LayerNorm"), "\(layer.output)")
        // And a GPT-2 layer without --kind still loads as a LayerNorm.
        let gpt2 = try Self.apply([], weights: "gpt2_small_shaped.safetensors", prefix: "h.0.ln_1",
                                  input: "gpt2_activations.npy", output: out)
        #expect(gpt2.status == 0, "\(gpt2.output)")
    }

    @Test func inspectShowsEachLayersKind() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.executable.path))
        let llama = try Self.run(["inspect", Fixtures.url("llama_f16.safetensors").path])
        #expect(llama.status == 0)
        #expect(llama.output.contains("weight only: RMSNorm"))
        #expect(llama.output.contains("Llama layout: 3 layers, 7 RMSNorm layers"))
        let gpt2 = try Self.run(["inspect", Fixtures.url("gpt2_small_shaped.safetensors").path])
        #expect(gpt2.output.contains("weight and bias: LayerNorm") && !gpt2.output.contains("weight only"))
    }
}
