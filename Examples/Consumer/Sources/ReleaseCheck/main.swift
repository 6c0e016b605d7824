// The optimised kernels checked as a downstream project's CI would check them. The test
// suite runs in a debug build, where the kernel layer's functions are calls
// (isa/begin.h, NK_INLINE); a release build inlines them into each row kernel and
// optimises the whole. The C is the same and its rounding is fixed (no contraction, no
// fast math), so the results must be too; this program proves it on the optimised code,
// at every instruction-set level this CPU has:
//   - LayerNorm and RMSNorm through NormKitTesting's NormalizationChecker (the shared
//     contracts: forward within 1e-6 and backward within 1e-5 of float64, every form and
//     thread count bitwise alike, the fused add bitwise the forward of the float32 sum), on
//     the hard-row catalogues with every kind next to every other, at lengths that take
//     each multi-row body (one row, batched, pipelined batches, pipelined, past 4096);
//   - bfloat16 and float16 bitwise the float forward of the widened rows, rounded once,
//     and their fused add bitwise the plain forward of the rounded stream.
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

/// Rows of every kind in `kinds` (the seeds in turn), interleaved so every kind sits next
/// to every other, until there are more than 64 Ki elements (NormalizationChecker splits
/// its input over threads).
func rows(_ kinds: [(Int, UInt64) -> [Float]], dim: Int) throws -> Tensor {
    var all: [[Float]] = []
    var seed: UInt64 = 1
    while all.count * dim <= 65_536 || all.count < 2 * kinds.count {
        for (i, kind) in kinds.enumerated() {
            all.append(kind(dim, seed))
            all.append(kinds[(i * 7 + 3) % kinds.count](dim, seed &+ 10))
        }
        seed += 1
    }
    return try Tensor(shape: [all.count, dim], scalars: all.flatMap { $0 })
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

/// Every shared contract of `norm` on `x` (NormKitTesting's NormalizationChecker: the
/// float64 bounds of forward and backward, every form against the others and across
/// thread counts, the fused add against the forward of the float32 sum), then its half forms.
@MainActor func checkNorm<N: RowNormalization>(
    _ norm: N, _ x: Tensor, _ label: String,
    backward: @escaping (Tensor, Tensor) throws -> NormalizationChecker<N>.ExpectedGradients,
    reference: @escaping (Tensor) throws -> [Double]
) throws {
    let checker = NormalizationChecker(
        norm: norm, input: x, residual: Tensor.randomNormal(x.shape, seed: 78),
        outputGradient: Tensor.randomNormal(x.shape, seed: 79), rowLength: norm.dim,
        badInputShapes: [[x.shape[0], norm.dim + 1]], backwardReference: backward, reference: reference)
    for violation in checker.violations() { check(false, "\(label): \(violation)") }
    try checkHalf(norm, x, BFloat16.self, label)
    try checkHalf(norm, x, Float16.self, label)
}

let dims = [1, 3, 17, 128, 300, 768, 1025, 4099]
let layerKinds = Reference.HardRow.allCases.map { kind in { (dim: Int, seed: UInt64) in kind.values(dim: dim, seed: seed) } }
let rmsKinds = Reference.RMSRow.allCases.map { kind in { (dim: Int, seed: UInt64) in kind.values(dim: dim, seed: seed) } }
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
                try checkNorm(l, try rows(layerKinds, dim: dim), "LayerNorm \(tag)", backward: { dy, x in
                    let g = try Reference.layerNormBackwardDouble(outputGradient: dy, input: x, weight: l.weight, eps: l.eps)
                    return (g.input, g.weight, g.bias)
                }) {
                    try Reference.layerNormDouble($0, weight: l.weight, bias: l.bias, eps: l.eps)
                }
                try checkNorm(r, try rows(rmsKinds, dim: dim), "RMSNorm \(tag)", backward: { dy, x in
                    let g = try Reference.rmsNormBackwardDouble(outputGradient: dy, input: x, weight: r.weight, eps: r.eps,
                                                                weightOffset: r.weightOffset)
                    return (g.input, g.weight, nil)
                }) {
                    try Reference.rmsNormDouble($0, weight: r.weight, eps: r.eps, weightOffset: r.weightOffset)
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
print("ReleaseCheck: OK (\(checked) norm pairs at levels \(InstructionSet.supported.map(\.rawValue).joined(separator: ", ")): NormalizationChecker's contracts, bf16, f16)")
