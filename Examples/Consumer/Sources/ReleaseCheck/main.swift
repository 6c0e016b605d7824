// The optimised kernels checked as a downstream project's CI would check them. The test
// suite runs in a debug build, where the kernel layer's functions are calls
// (isa/begin.h, NK_INLINE); a release build inlines them into each row kernel and
// optimises the whole. The C is the same and its rounding is fixed (no contraction, no
// fast math), so the results must be too; this program proves it on the optimised code,
// at every instruction-set level this CPU has:
//   - LayerNorm and RMSNorm forward within 1e-6 of float64 per row, on the hard-row
//     catalogues with every kind next to every other, at lengths that take each multi-row
//     body (one row, batched, pipelined batches, pipelined, rows past 4096);
//   - the fused add bitwise the plain forward of the float32 sum;
//   - bfloat16 and float16 bitwise the float forward of the widened rows, rounded once,
//     and their fused add bitwise the plain forward of the rounded stream;
//   - both backwards within 1e-5 of float64.
// Exit status 1 on any failure.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NormKit
import NormKitTesting

var failures: [String] = []
@MainActor func check(_ ok: Bool, _ what: @autoclosure () -> String) {
    if !ok { failures.append(what()) }
}

/// Bit patterns equal, or both NaN.
func sameBits(_ a: [Float], _ b: [Float]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) }
}

/// Widening is exact and one-to-one, so equal widened bits are equal half bits.
func sameBits<T: HalfPrecisionElement>(_ a: HalfTensor<T>, _ b: HalfTensor<T>) -> Bool {
    sameBits(Tensor(widening: a).scalars, Tensor(widening: b).scalars)
}

/// Rows of every kind in `kinds`, two seeds each, interleaved so every kind sits next to
/// every other.
func rows(_ kinds: [(name: String, values: (Int, UInt64) -> [Float])], dim: Int) throws -> Tensor {
    var all: [[Float]] = []
    for seed: UInt64 in [1, 2] {
        for (i, kind) in kinds.enumerated() {
            all.append(kind.values(dim, seed))
            all.append(kinds[(i * 7 + 3) % kinds.count].values(dim, seed &+ 10))
        }
    }
    return try Tensor(shape: [all.count, dim], scalars: all.flatMap { $0 })
}

func sum(_ a: Tensor, _ b: Tensor) throws -> Tensor {
    try Tensor(shape: a.shape, scalars: zip(a.scalars, b.scalars).map { $0 + $1 })
}

/// The half forms of `norm` on `x` in the type `T`.
@MainActor func checkHalf<N: RowNormalization, T: HalfPrecisionElement>(_ norm: N, _ x: Tensor, _: T.Type, _ label: String) throws {
    let xh = HalfTensor<T>(rounding: x)
    let got = try norm.forward(xh)
    check(sameBits(got, HalfTensor<T>(rounding: try norm.forward(Tensor(widening: xh)))),
          "\(label) \(T.self): not the float forward of the widened rows, rounded once")
    var stream = HalfTensor<T>(rounding: Tensor.randomNormal(x.shape, seed: 77)), out = xh
    try norm.forward(xh, addingTo: &stream, into: &out)
    check(sameBits(out, try norm.forward(stream)), "\(label) \(T.self): fused add is not the forward of the stream")
}

@MainActor func checkNorm<N: RowNormalization>(_ norm: N, _ x: Tensor, _ label: String, reference: (Tensor) throws -> [Double]) throws {
    let y = try norm.forward(x)
    let error = Reference.maxRowError(y, expected: try reference(x))
    check(error <= 1e-6, "\(label): forward error \(error) over 1e-6")
    var stream = Tensor.randomNormal(x.shape, seed: 78), out = Tensor.zeros(x.shape)
    let expectedStream = try sum(x, stream)
    try norm.forward(x, addingTo: &stream, into: &out)
    check(sameBits(stream.scalars, expectedStream.scalars), "\(label): fused add's stream is not x + h")
    check(sameBits(out.scalars, try norm.forward(expectedStream).scalars),
          "\(label): fused add is not the forward of the float32 sum")
    try checkHalf(norm, x, BFloat16.self, label)
    try checkHalf(norm, x, Float16.self, label)
}

/// The backward of `norm` on four rows of each kind in `kinds`, a kind at a time: `error`
/// gives the worst gradient error against float64 for (gradients, x, dy).
@MainActor func checkBackward<N: RowNormalization>(
    _ norm: N, kinds: [(name: String, values: (Int, UInt64) -> [Float])], dim: Int, _ label: String,
    error: (N.Gradients, Tensor, Tensor) throws -> Double
) throws {
    for kind in kinds {
        let x = try Tensor(shape: [4, dim], scalars: (0 ..< 4).flatMap { kind.values(dim, UInt64($0)) })
        let dy = Tensor.randomNormal([4, dim], seed: 5)
        let (_, statistics) = try norm.forwardForTraining(x)
        let e = try error(try norm.backward(outputGradient: dy, input: x, statistics: statistics), x, dy)
        check(e <= 1e-5, "\(label) backward on \(kind.name): error \(e) over 1e-5")
    }
}

let dims = [1, 3, 17, 128, 300, 768, 1025, 4099]
let layerKinds = Reference.HardRow.allCases.map { kind in
    (name: kind.rawValue, values: { (dim: Int, seed: UInt64) in kind.values(dim: dim, seed: seed) })
}
let rmsKinds = Reference.RMSRow.allCases.map { kind in
    (name: kind.rawValue, values: { (dim: Int, seed: UInt64) in kind.values(dim: dim, seed: seed) })
}
var checked = 0
for level in InstructionSet.supported {
    try InstructionSet.with(level) {
        for dim in dims {
            var layer = try LayerNorm(dim: dim)
            layer.weight = Tensor.randomNormal([dim], mean: 1, standardDeviation: 0.3, seed: 31)
            layer.bias = Tensor.randomNormal([dim], standardDeviation: 0.2, seed: 32)
            var rms = try RMSNorm(dim: dim)
            rms.weight = Tensor.randomNormal([dim], mean: 1, standardDeviation: 0.3, seed: 33)
            for plain in [true, false] {
                let l = plain ? try LayerNorm(dim: dim) : layer
                let r = plain ? try RMSNorm(dim: dim) : rms
                let tag = "\(level) dim \(dim)\(plain ? "" : " affine")"
                try checkNorm(l, try rows(layerKinds, dim: dim), "LayerNorm \(tag)") {
                    try Reference.layerNormDouble($0, weight: l.weight, bias: l.bias, eps: l.eps)
                }
                try checkNorm(r, try rows(rmsKinds, dim: dim), "RMSNorm \(tag)") {
                    try Reference.rmsNormDouble($0, weight: r.weight, eps: r.eps, weightOffset: r.weightOffset)
                }
                // Backward, a kind at a time (a weight gradient sums over rows).
                try checkBackward(l, kinds: layerKinds, dim: dim, "LayerNorm \(tag)") { got, x, dy in
                    let expected = try Reference.layerNormBackwardDouble(outputGradient: dy, input: x, weight: l.weight,
                                                                         eps: l.eps)
                    return max(Reference.maxRowError(got.input, expected: expected.input),
                               Reference.maxError(got.weight, expected: expected.weight),
                               Reference.maxError(got.bias, expected: expected.bias))
                }
                try checkBackward(r, kinds: rmsKinds, dim: dim, "RMSNorm \(tag)") { got, x, dy in
                    let expected = try Reference.rmsNormBackwardDouble(outputGradient: dy, input: x, weight: r.weight,
                                                                       eps: r.eps, weightOffset: r.weightOffset)
                    return max(Reference.maxRowError(got.input, expected: expected.input),
                               Reference.maxError(got.weight, expected: expected.weight))
                }
                checked += 1
            }
        }
    }
}
for failure in failures.prefix(20) { print("ReleaseCheck: FAILED: \(failure)") }
if !failures.isEmpty {
    print("ReleaseCheck: \(failures.count) failure(s)")
    exit(1)
}
print("ReleaseCheck: OK (\(checked) norm pairs at levels \(InstructionSet.supported.map(\.rawValue).joined(separator: ", ")): forward, fused add, bf16, f16, backward)")
