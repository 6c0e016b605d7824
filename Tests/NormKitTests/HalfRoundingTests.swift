// RMSNorm.halfRounding against Hugging Face's RMSNorm modules run by PyTorch in bf16 and
// f16 (Fixtures/hf_rmsnorm.safetensors, written by scripts/make-hf-fixtures.py).
import Foundation
@testable import NormKit
import NormKitIO
import Testing

/// Distance in units in the last place of the half type between two values of one type
/// (their 16-bit patterns on one ordered line: -0 and +0 are one apart).
private func ulps<T: HalfPrecisionElement>(_ a: T, _ b: T) -> Int {
    func ordered(_ v: T) -> Int {
        let bits = Int(v.bitPattern)
        return bits & 0x8000 != 0 ? -(bits & 0x7FFF) - 1 : bits
    }
    return abs(ordered(a) - ordered(b))
}

/// How `got` compares with `want`: the share of bit-identical elements and the largest distance.
private func agreement<T: HalfPrecisionElement>(_ got: HalfTensor<T>, _ want: HalfTensor<T>) -> (identical: Double, worst: Int) {
    var same = 0, worst = 0
    for (a, b) in zip(got.elements, want.elements) {
        let d = ulps(a, b)
        if d == 0 { same += 1 }
        worst = max(worst, d)
    }
    return (Double(same) / Double(max(want.scalarCount, 1)), worst)
}

@Suite("Half rounding: Hugging Face's cast orders")
struct HalfRoundingTests {
    func check<T: HalfPrecisionElement>(_: T.Type, _ name: String) throws {
        // Read per test, not held in a static: a static's mapped file is reported by
        // LeakSanitizer at exit.
        let file = try SafeTensors(contentsOf: Fixtures.url("hf_rmsnorm.safetensors"))
        let x = try file.halfTensor(named: "x_\(name)", as: T.self)
        let w = try file.halfTensor(named: "w_\(name)", as: T.self)
        let llama = try file.halfTensor(named: "llama_\(name)", as: T.self)
        let gemma = try file.halfTensor(named: "gemma_\(name)", as: T.self)
        let dim = x.shape.last!
        for level in InstructionSet.supported {
            try InstructionSet.with(level) {
                // LlamaRMSNorm: x̂ rounded to T, times the T weight, rounded again.
                var norm = try RMSNorm(dim: dim, eps: 1e-6)
                norm.weight = Tensor(widening: w)
                norm.halfRounding = .huggingFaceLlama
                let y = try norm.forward(x)
                let a = agreement(y, llama)
                print("HalfRoundingTests \(name) \(level): Llama order \(a.identical * 100)% identical, worst \(a.worst) ulp")
                // PyTorch's float32 mean(x²) and rsqrt are rounded in its own order, so in
                // general an element whose x̂ lies within that error of a rounding boundary
                // of T may come out one step apart. On this fixture (3072 elements per
                // type): bf16 all identical, f16 one element one unit apart, at every level
                // (docs/numerics.md).
                #expect(a.worst <= 1 && a.identical >= 0.999, "\(name) \(level)")
                // The default rounds once: on the same fixture it differs (the test can fail).
                norm.halfRounding = .once
                let once = agreement(try norm.forward(x), llama)
                print("HalfRoundingTests \(name) \(level): once against the Llama fixture \(once.identical * 100)% identical, worst \(once.worst) ulp")
                #expect(once.identical < 0.99, "\(name) \(level): once \(once.identical) vs Llama \(a.identical)")
                // GemmaRMSNorm is the default order with weightOffset 1.
                var g = try RMSNorm(dim: dim, eps: 1e-6, weightOffset: 1)
                g.weight = Tensor(widening: w)
                let b = agreement(try g.forward(x), gemma)
                print("HalfRoundingTests \(name) \(level): Gemma order (once, weightOffset 1) \(b.identical * 100)% identical, worst \(b.worst) ulp")
                #expect(b.worst <= 1 && b.identical >= 0.999, "\(name) \(level)")
                // The fused form honours the option: the plain forward of the rounded stream.
                norm.halfRounding = .huggingFaceLlama
                let zeros = HalfTensor<T>(rounding: Tensor.zeros(x.shape))
                var stream = zeros.elements
                var fused = [T](repeating: T(bitPattern: 0), count: x.scalarCount)
                try x.elements.withUnsafeBufferPointer { xp in
                    try stream.withUnsafeMutableBufferPointer { sp in
                        try fused.withUnsafeMutableBufferPointer { fp in try norm.forward(xp, addingTo: sp, into: fp) }
                    }
                }
                #expect(fused.map(\.bitPattern) == y.elements.map(\.bitPattern), "\(name) \(level)")
                // The fused add's stream against PyTorch's half add x + r, and its output
                // against LlamaRMSNorm of that stream (PyTorch's two separate calls).
                let r = try file.halfTensor(named: "r_\(name)", as: T.self)
                let torchSum = try file.halfTensor(named: "sum_\(name)", as: T.self)
                var residual = r.elements
                var out = fused
                try x.elements.withUnsafeBufferPointer { xp in
                    try residual.withUnsafeMutableBufferPointer { sp in
                        try out.withUnsafeMutableBufferPointer { fp in try norm.forward(xp, addingTo: sp, into: fp) }
                    }
                }
                #expect(residual.map(\.bitPattern) == torchSum.elements.map(\.bitPattern), "\(name) \(level): the stream")
                let separate = try norm.forward(torchSum)
                #expect(out.map(\.bitPattern) == separate.elements.map(\.bitPattern), "\(name) \(level)")
            }
        }
    }

    @Test("bfloat16: Llama and Gemma orders against PyTorch") func bfloat16() throws { try check(BFloat16.self, "bf16") }
    #if !(os(macOS) && arch(x86_64))
    @Test("float16: Llama and Gemma orders against PyTorch") func float16() throws { try check(Float16.self, "f16") }
    #endif

    @Test("Llama order: bitwise the same at every level and thread count")
    func bitwiseAcrossLevelsAndThreads() throws {
        var norm = try RMSNorm(dim: 4096, eps: 1e-5)
        norm.weight = Tensor.randomNormal([4096], mean: 1, standardDeviation: 0.3, seed: 3)
        norm.halfRounding = .huggingFaceLlama
        let x = HalfTensor<BFloat16>(rounding: Tensor.randomNormal([64, 4096], seed: 4))
        var results: [[UInt16]] = []
        for level in InstructionSet.supported {
            for threads in [1, 2] {
                try InstructionSet.with(level) {
                    try Parallelism.withThreadCount(threads) { results.append(try norm.forward(x).elements.map(\.bitPattern)) }
                }
            }
        }
        #expect(Set(results).count == 1)
    }
}
