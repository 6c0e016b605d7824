#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NormKit
import NormKitIO
import NormKitTesting

// Normalise a [2, 4, 768] activation tensor and check it against the reference.
let x = Tensor.randomNormal([2, 4, 768], mean: 3, standardDeviation: 5, seed: 1)
let norm = try LayerNorm(dim: 768)
let y = try norm(x)
let error = Reference.maxRowError(y, expected: try Reference.layerNormDouble(x))

let first = y.scalars.prefix(768)
let mean = first.reduce(0.0) { $0 + Double($1) } / 768
let variance = first.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / 768
print("Consumer: LayerNorm(dim: 768) on \(x.shape): row 0 mean \(mean), variance \(variance), max error \(error)")
guard error <= 1e-6, abs(mean) < 1e-5, abs(variance - 1) < 1e-3 else {
    print("Consumer: FAILED")
    exit(1)
}

// A pre-norm residual stream over a few blocks, as Llama runs it: each block reads
// norm(h), and its sublayer's output is added back into h. The fused call does the add
// and the next norm in one pass, in place: `h += sublayer`, `normed = norm(h)`.
let dim = 256
let rms = try RMSNorm(dim: dim, eps: 1e-5)
/// A stand-in for attention or an MLP: any function of the normalised stream.
func sublayer(_ x: Tensor, block: Int) throws -> Tensor {
    try Tensor(shape: x.shape, scalars: x.scalars.enumerated().map { i, v in v * Float(0.5 + 0.1 * Double((i + block) % 7)) })
}
var h = Tensor.randomNormal([2, 16, dim], seed: 2)          // the embeddings
var normed = Tensor.zeros(h.shape)
try rms.forward(h, into: &normed)                             // block 0 reads norm(h)
var hTwoCalls = h
for block in 0..<4 {
    let out = try sublayer(normed, block: block)
    try rms.forward(out, addingTo: &h, into: &normed)         // h += out; normed = norm(h)
    // The same block as two calls, for comparison: the add, then the norm.
    hTwoCalls = try Tensor(shape: h.shape, scalars: zip(hTwoCalls.scalars, out.scalars).map { $0 + $1 })
    guard h == hTwoCalls, normed == (try rms(hTwoCalls)) else {
        print("Consumer: FAILED (fused block \(block) differs from add-then-norm)")
        exit(1)
    }
}
let streamError = Reference.maxRowError(normed, expected: try Reference.rmsNormDouble(h, weight: rms.weight, eps: rms.eps))
print("Consumer: pre-norm residual stream over 4 blocks, RMSNorm(dim: \(dim)) fused with the add: bitwise add-then-norm, max error \(streamError)")
guard streamError <= 1e-6 else {
    print("Consumer: FAILED")
    exit(1)
}
// NormKitIO: the layer through a safetensors checkpoint and the output through .npy, in memory.
let checkpoint = try SafeTensors(data: try SafeTensors.encode(["ln_f.weight": norm.weight, "ln_f.bias": norm.bias]))
let loaded = try LayerNorm(loading: "ln_f", from: checkpoint)
guard try Tensor(npyData: try loaded(x).npyData()) == y else {
    print("Consumer: FAILED (a layer loaded from safetensors, through .npy, differs)")
    exit(1)
}
print("Consumer: LayerNorm loaded from safetensors, its output through .npy: bitwise equal")
print("Consumer: OK")
