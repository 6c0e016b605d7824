import Foundation
import NormKit
import NormKitIO
import NormKitTesting
import Testing

@Suite("Checkpoints")
struct CheckpointTests {
    /// GPT-2's 25 norm layers (12 blocks) in model order.
    static let gpt2Small: [String] = (0..<12).flatMap { ["h.\($0).ln_1", "h.\($0).ln_2"] } + ["ln_f"]

    /// The fixture script's closed form for layer k (model order), dim 8:
    /// weight[j] = 1 + k/64 + j/256, bias[j] = k/8 - j/32.
    static func parameters(_ k: Int) -> (weight: [Float], bias: [Float]) {
        ((0..<8).map { Float(1 + Double(k) / 64 + Double($0) / 256) },
         (0..<8).map { Float(Double(k) / 8 - Double($0) / 32) })
    }

    static func gpt2File(blocks: Int, dim: Int, prefix: String = "", skip: String? = nil) throws -> SafeTensors {
        var t: [String: Tensor] = ["\(prefix)wte.weight": Tensor.randomNormal([10, dim], seed: 1)]
        var names = (0..<blocks).flatMap { ["h.\($0).ln_1", "h.\($0).ln_2"] } + ["ln_f"]
        names.removeAll { $0 == skip }
        for (k, name) in names.enumerated() {
            t["\(prefix)\(name).weight"] = Tensor.randomNormal([dim], mean: 1, standardDeviation: 0.1, seed: UInt64(2 * k))
            t["\(prefix)\(name).bias"] = Tensor.randomNormal([dim], standardDeviation: 0.1, seed: UInt64(2 * k + 1))
        }
        return try SafeTensors(data: SafeTensors.encode(t))
    }

    // MARK: GPT-2

    @Test func gpt2ShapedFixtureLoadsAll25NormLayersInOrder() throws {
        let file = try SafeTensors(contentsOf: Fixtures.url("gpt2_small_shaped.safetensors"))
        #expect(try GPT2.blockCount(in: file) == 12)
        #expect(try GPT2.normLayerNames(in: file) == Self.gpt2Small)
        let layers = try GPT2.normLayers(from: file)
        #expect(layers.map(\.name) == Self.gpt2Small)
        for (k, layer) in layers.enumerated() {
            let (w, b) = Self.parameters(k)
            #expect(layer.norm.dim == 8 && layer.norm.eps == 1e-5 && layer.norm.usesBias)
            #expect(layer.norm.weight.scalars == w, "\(layer.name)")
            #expect(layer.norm.bias.scalars == b, "\(layer.name)")
        }
    }

    @Test func prefixedGPT2FixtureKeepsTheFileNames() throws {
        let file = try SafeTensors(contentsOf: Fixtures.url("gpt2_lmhead_prefixed.safetensors"))
        #expect(file.contains("lm_head.weight") && file.info(named: "transformer.h.0.attn.masked_bias")?.shape == [])
        #expect(try GPT2.blockCount(in: file) == 12)
        let layers = try GPT2.normLayers(from: file)
        #expect(layers.map(\.name) == Self.gpt2Small.map { "transformer." + $0 })
        for (k, layer) in layers.enumerated() {
            #expect(layer.norm.weight.scalars == Self.parameters(k).weight, "\(layer.name)")
            #expect(layer.norm.bias.scalars == Self.parameters(k).bias, "\(layer.name)")
        }
    }

    @Test func normLayerNamesSkipTheOtherTensors() throws {
        let file = try SafeTensors(contentsOf: Fixtures.url("gpt2_small_shaped.safetensors"))
        // The file also holds wte/wpe, attn.bias (a mask), attn.c_attn.bias, mlp.c_proj.bias.
        #expect(file.names.count == 25 * 2 + 2 + 12 * 3)
        #expect(file.normLayerNames == Self.gpt2Small)
    }

    @Test func transformerPrefixMatchesBothWays() throws {
        let plain = try SafeTensors(contentsOf: Fixtures.url("gpt2_small_shaped.safetensors"))
        let prefixed = try SafeTensors(contentsOf: Fixtures.url("gpt2_lmhead_prefixed.safetensors"))
        let expected = Self.parameters(7)  // h.3.ln_2 is layer 7
        for (prefix, file) in [("h.3.ln_2", plain), ("transformer.h.3.ln_2", plain),
                               ("h.3.ln_2", prefixed), ("transformer.h.3.ln_2", prefixed)] {
            let norm = try LayerNorm(loading: prefix, from: file)
            #expect(norm.weight.scalars == expected.weight && norm.bias.scalars == expected.bias, "\(prefix)")
        }
    }

    @Test func missingLayerListsTheNormLayersTheFileHas() throws {
        let file = try SafeTensors(contentsOf: Fixtures.url("gpt2_small_shaped.safetensors"))
        #expect(throws: NormKitError.missingTensor(name: "h.12.ln_1", available: Self.gpt2Small)) {
            try LayerNorm(loading: "h.12.ln_1", from: file)
        }
        // A non-norm prefix that has no weight is missing too.
        #expect(throws: NormKitError.missingTensor(name: "h.0.attn", available: Self.gpt2Small)) {
            try LayerNorm(loading: "h.0.attn", from: file)
        }
    }

    @Test func realDimensionAndLargerModels() throws {
        // GPT-2 small's true width, and medium's 24 blocks (49 norm layers).
        for (blocks, prefix) in [(12, ""), (24, "transformer.")] {
            let file = try Self.gpt2File(blocks: blocks, dim: 768, prefix: prefix)
            #expect(try GPT2.blockCount(in: file) == blocks)
            let layers = try GPT2.normLayers(from: file)
            #expect(layers.count == 2 * blocks + 1)
            #expect(layers.last?.name == prefix + "ln_f")
            #expect(layers.allSatisfy { $0.norm.dim == 768 })
            #expect(layers[5].norm.weight == (try file.tensor(named: prefix + "h.2.ln_2.weight")))
        }
    }

    @Test func gpt2HelperErrors() throws {
        let bert = try SafeTensors(data: SafeTensors.encode(["encoder.LayerNorm.weight": Tensor.ones([4])]))
        #expect(throws: NormKitError.missingTensor(name: "h.0.ln_1", available: ["encoder.LayerNorm"])) {
            try GPT2.blockCount(in: bert)
        }
        let noFinal = try Self.gpt2File(blocks: 2, dim: 4, skip: "ln_f")
        #expect(throws: NormKitError.missingTensor(name: "ln_f", available: noFinal.normLayerNames)) {
            try GPT2.normLayers(from: noFinal)
        }
        let noLn2 = try Self.gpt2File(blocks: 3, dim: 4, skip: "h.1.ln_2")
        #expect(throws: NormKitError.missingTensor(name: "h.1.ln_2", available: noLn2.normLayerNames)) {
            try GPT2.normLayerNames(in: noLn2)
        }
        // Blocks h.0, h.1, h.3: a gap at h.2.
        var t: [String: Tensor] = [:]
        for i in [0, 1, 3] { t["h.\(i).ln_1.weight"] = Tensor.ones([4]) }
        let gap = try SafeTensors(data: SafeTensors.encode(t))
        let error = #expect(throws: NormKitError.self) { try GPT2.blockCount(in: gap) }
        guard case let .invalidFile(_, _, reason)? = error else { Issue.record("\(String(describing: error))"); return }
        #expect(reason.contains("no h.2"))
    }

    // MARK: LayerNorm(loading:from:eps:)

    @Test func gammaBetaNames() throws {
        let w = Tensor.randomNormal([6], seed: 1), b = Tensor.randomNormal([6], seed: 2)
        let file = try SafeTensors(data: SafeTensors.encode(["bert.embeddings.LayerNorm.gamma": w,
                                                             "bert.embeddings.LayerNorm.beta": b]))
        #expect(file.normLayerNames == ["bert.embeddings.LayerNorm"])
        let norm = try LayerNorm(loading: "bert.embeddings.LayerNorm", from: file, eps: 1e-12)
        #expect(norm.weight == w && norm.bias == b && norm.eps == 1e-12 && norm.usesBias)
    }

    @Test func weightWithoutBiasGivesALayerWithoutBiasOnlyWhenAskedFor() throws {
        let w = Tensor.randomNormal([5], seed: 3)
        let file = try SafeTensors(data: SafeTensors.encode(["model.norm.weight": w]))
        // By default a weight-only layer is refused: in Llama-family files it is an RMSNorm.
        let refusal = #expect(throws: NormKitError.self) { try LayerNorm(loading: "model.norm", from: file) }
        let message = refusal.map { "\($0)" } ?? ""
        for part in ["no bias", "RMSNorm(loading:from:)", "requireBias: false", "Llama"] {
            #expect(message.contains(part), "\(message)")
        }
        let norm = try LayerNorm(loading: "model.norm", from: file, requireBias: false)
        #expect(!norm.usesBias && norm.weight == w)
        let x = Tensor.randomNormal([3, 5], seed: 4)
        let error = Reference.maxRowError(try norm(x), expected: try Reference.layerNormDouble(x, weight: w))
        #expect(error <= forwardBound)
    }

    @Test func halfPrecisionWeightsAreWidened() throws {
        // F16 weight [1, 2, 0.5, -1] and bias [0, 0.25, -0.25, 3].
        let bits: [UInt16] = [0x3C00, 0x4000, 0x3800, 0xBC00, 0x0000, 0x3400, 0xB400, 0x4200]
        var data: [UInt8] = []
        for h in bits { withUnsafeBytes(of: h.littleEndian) { data += $0 } }
        let header = #"{"ln.weight":{"dtype":"F16","shape":[4],"data_offsets":[0,8]},"ln.bias":{"dtype":"F16","shape":[4],"data_offsets":[8,16]}}"#
        let norm = try LayerNorm(loading: "ln", from: SafeTensors(data: safetensorsBytes(header, data)))
        #expect(norm.weight.scalars == [1, 2, 0.5, -1] && norm.bias.scalars == [0, 0.25, -0.25, 3])
    }

    @Test func badParametersAreRefused() throws {
        let mismatch = try SafeTensors(data: SafeTensors.encode(["ln.weight": Tensor.ones([4]), "ln.bias": Tensor.zeros([5])]))
        #expect(throws: NormKitError.parameterShapeMismatch(name: "ln.bias", expected: [4], actual: [5])) {
            try LayerNorm(loading: "ln", from: mismatch)
        }
        let rank2 = try SafeTensors(data: SafeTensors.encode(["ln.weight": Tensor.ones([2, 4])]))
        let error = #expect(throws: NormKitError.self) { try LayerNorm(loading: "ln", from: rank2) }
        guard case let .invalidArgument(name, _, actual)? = error else { Issue.record("\(String(describing: error))"); return }
        #expect(name == "ln.weight" && actual == "shape [2, 4]")
        let empty = try SafeTensors(data: SafeTensors.encode(["ln.weight": Tensor.ones([0])]))
        #expect(throws: NormKitError.self) { try LayerNorm(loading: "ln", from: empty) }
        let ok = try SafeTensors(data: SafeTensors.encode(["ln.weight": Tensor.ones([4])]))
        #expect(throws: NormKitError.invalidEpsilon(0)) { try LayerNorm(loading: "ln", from: ok, eps: 0) }
        let ints = try SafeTensors(data: safetensorsBytes(#"{"ln.weight":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}}"#, [1, 0, 0, 0]))
        let unsupported = #expect(throws: NormKitError.self) { try LayerNorm(loading: "ln", from: ints) }
        guard case .unsupported? = unsupported else { Issue.record("\(String(describing: unsupported))"); return }
    }

    // MARK: apply, end to end

    /// What `normkit apply --weights gpt2_small_shaped.safetensors --prefix h.0.ln_1
    /// --input gpt2_activations.npy --output y.npy` does, checked against NumPy's float64
    /// LayerNorm of the same activations with the same parameters.
    @Test func applyEndToEnd() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = try SafeTensors(contentsOf: Fixtures.url("gpt2_small_shaped.safetensors"))
        let norm = try LayerNorm(loading: "transformer.h.0.ln_1", from: file, eps: 1e-5)
        let x = try Tensor(npyContentsOf: Fixtures.url("gpt2_activations.npy"))
        #expect(x.shape == [2, 3, 8])
        let output = dir.appendingPathComponent("y.npy")
        try norm(x).writeNPY(to: output)

        let y = try Tensor(npyContentsOf: output)
        let numpy = try Tensor(npyContentsOf: Fixtures.url("gpt2_h0_ln1_expected.npy"))
        #expect(y.shape == numpy.shape)
        // NumPy's result was rounded to float32 (half an ulp, ~6e-8 relative).
        #expect(Reference.maxRowError(y, expected: numpy.scalars.map(Double.init)) <= 2e-6)
        // And against NormKit's own float64 reference with the loaded parameters.
        let reference = try Reference.layerNormDouble(x, weight: norm.weight, bias: norm.bias, eps: 1e-5)
        #expect(Reference.maxRowError(y, expected: reference) <= forwardBound)
    }
}
