import NormKit
import NormKitIO

/// RMSNorm and the fused residual add: forward (allocating, into, training, raw
/// buffers), backward (fresh and accumulating), the fused forms of both norms, Llama
/// loading from an in-memory file, and their error paths.
func rmsRound(_ f: Fixture, _ i: Int) throws -> Double {
    var sum = 0.0
    var rms = try RMSNorm(dim: 768, eps: 1e-5, weightOffset: i % 2 == 0 ? 0 : 1)
    rms.weight = f.norm.weight
    let y = try rms(f.x)
    sum += Double(y.scalars[i % y.scalarCount])
    var out = Tensor.zeros(f.x.shape)
    try rms.forward(f.x, into: &out)
    let (yh, s) = try rms.forwardForTraining(f.hard)
    sum += Double(yh.scalars[i % 768]) + s.reciprocalRootMeanSquares[0]
    let g = try rms.backward(outputGradient: f.hardDy, input: f.hard, statistics: s)
    var acc = try rms.zeroGradients(inputShape: f.hard.shape)
    try rms.backward(outputGradient: f.hardDy, input: f.hard, statistics: s, accumulatingInto: &acc)
    sum += Double(g.weight.scalars[i % 768]) + Double(acc.input.scalars[i % 768])

    // The fused add: allocating, training, in place, raw buffers (both norms).
    let (fy, fs) = try rms.forward(f.x, addingResidual: out)
    let (_, _, fst) = try f.norm.forwardForTraining(f.x, addingResidual: out)
    sum += Double(fy.scalars[i % fy.scalarCount]) + Double(fs.scalars[0]) + fst.means[0]
    var stream = f.x
    try rms.forward(y, addingTo: &stream, into: &out)
    try f.norm.forward(y, addingTo: &stream, into: &out)
    sum += Double(out.scalars[(i * 3) % out.scalarCount])
    var raw = f.x.scalars
    try y.withUnsafeBufferPointer { yp in
        try raw.withUnsafeMutableBufferPointer { rp in
            try rms.forward(yp, addingTo: rp, into: rp)
            try f.norm.forward(UnsafeBufferPointer(rp), into: rp)
        }
    }
    sum += Double(raw[i % raw.count])

    // Llama names, in memory, and the refusals.
    let file = try SafeTensors(data: SafeTensors.encode([
        "model.layers.0.input_layernorm.weight": Tensor.ones([8]),
        "model.layers.0.post_attention_layernorm.weight": Tensor.ones([8]),
        "model.norm.weight": Tensor.ones([8]), "ln.weight": Tensor.ones([8]), "ln.bias": Tensor.zeros([8]),
    ]))
    sum += Double(try Llama.normLayers(from: file).count)
    do { _ = try LayerNorm(loading: "model.norm", from: file) } catch { sum += Double(error.description.utf8.count) }
    do { _ = try RMSNorm(loading: "ln", from: file) } catch { sum += Double(error.description.utf8.count) }
    do { _ = try rms.forward(f.x, addingResidual: f.hard) } catch { sum += Double(error.description.utf8.count) }
    do {
        try raw.withUnsafeMutableBufferPointer { rp throws(NormKitError) in
            try rms.forward(UnsafeBufferPointer(rebasing: rp[0..<1536]), into: UnsafeMutableBufferPointer(rebasing: rp[768..<2304]))
        }
    } catch { sum += Double(error.description.utf8.count) }
    return sum
}
