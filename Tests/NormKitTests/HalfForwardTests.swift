@testable import NormKit
import NormKitTesting
import NormKitIO
import Testing

/// A half type as these tests measure it: its precision and smallest normal exponent.
protocol TestHalf: HalfPrecisionElement {
    static var precision: Int { get }
    static var minExponent: Int { get }
    /// `value` rounded once to the type.
    static func rounded(_ value: Double) -> Self
}

extension BFloat16: TestHalf {
    static var precision: Int { 8 }
    static var minExponent: Int { -126 }
    static func rounded(_ value: Double) -> BFloat16 { BFloat16(value) }
}

#if !(os(macOS) && arch(x86_64))
extension Float16: TestHalf {
    static var precision: Int { 11 }
    static var minExponent: Int { -14 }
    static func rounded(_ value: Double) -> Float16 { Float16(value) }
}
#endif

/// The spacing of `T` around `v`: 2^(e - p + 1) for |v| in [2^e, 2^(e+1)), the
/// subnormal spacing below the smallest normal.
private func ulp<T: TestHalf>(_ v: Double, _: T.Type) -> Double {
    let e = v == 0 || !v.isFinite ? T.minExponent : max(Int(abs(v).exponent), T.minExponent)
    return Double(sign: .plus, exponent: e - (T.precision - 1), significand: 1)
}

/// Rows of three kinds, `perKind` each: symmetric (mean 0), offset (mean 50, spread
/// 0.5: cancellation in the centring) and spiked (one value of 300 in a unit-spread row).
private func rows(_ dim: Int, perKind: Int = 2, seed: UInt64) -> Tensor {
    let symmetric = Tensor.randomNormal([perKind, dim], standardDeviation: 1, seed: seed)
    let offset = Tensor.randomNormal([perKind, dim], mean: 50, standardDeviation: 0.5, seed: seed &+ 1)
    var spiked = Tensor.randomNormal([perKind, dim], standardDeviation: 1, seed: seed &+ 2)
    spiked.withUnsafeMutableBufferPointer { p in
        for r in 0 ..< perKind { p[r * dim + (r * 7919) % dim] = 300 }
    }
    return try! Tensor(shape: [3 * perKind, dim], scalars: symmetric.scalars + offset.scalars + spiked.scalars)
}

private func halfBits<T: HalfPrecisionElement>(_ t: HalfTensor<T>) -> [UInt16] { t.elements.map(\.bitPattern) }

/// The norms under test, with their float64 reference on float inputs.
private struct HalfCase {
    var name: String
    var norm: any RowNormalization
    var reference: (Tensor) throws -> [Double]

    static func all(_ dim: Int) throws -> [HalfCase] {
        var layer = try LayerNorm(dim: dim)
        layer.weight = Tensor.randomNormal([dim], mean: 1, standardDeviation: 0.3, seed: 31)
        layer.bias = Tensor.randomNormal([dim], standardDeviation: 0.2, seed: 32)
        var rms = try RMSNorm(dim: dim)
        rms.weight = Tensor.randomNormal([dim], mean: 1, standardDeviation: 0.3, seed: 33)
        var gemma = try RMSNorm(dim: dim, weightOffset: 1)
        gemma.weight = Tensor.randomNormal([dim], standardDeviation: 0.3, seed: 34)
        let (l, r, g) = (layer, rms, gemma)
        return [
            HalfCase(name: "LayerNorm(\(dim))", norm: l) {
                try Reference.layerNormDouble($0, weight: l.weight, bias: l.bias, eps: l.eps)
            },
            HalfCase(name: "RMSNorm(\(dim))", norm: r) {
                try Reference.rmsNormDouble($0, weight: r.weight, eps: r.eps, weightOffset: r.weightOffset)
            },
            HalfCase(name: "RMSNorm(\(dim), offset 1)", norm: g) {
                try Reference.rmsNormDouble($0, weight: g.weight, eps: g.eps, weightOffset: g.weightOffset)
            },
        ]
    }
}

private func forwardHalf<T: HalfPrecisionElement>(_ norm: any RowNormalization, _ x: HalfTensor<T>) throws -> HalfTensor<T> {
    try norm.forward(x)
}

@Suite("Half-precision forward")
struct HalfForwardTests {
    static let dims = [1, 2, 3, 7, 8, 15, 16, 17, 31, 33, 64, 127, 255, 768, 1000, 1023, 1024, 2049, 4096, 4099]

    /// docs/numerics.md, "Half-precision elements": every output within half a unit of
    /// `T` at the float64 result plus twice the float path's 1e-6·max(1, max|y|) of the
    /// row, which is inside the issue's one-ulp bound; and bitwise the float forward of
    /// the widened input, rounded once.
    func accuracy<T: TestHalf>(_: T.Type) throws {
        for level in InstructionSet.supported {
            try InstructionSet.with(level) {
                for dim in Self.dims {
                    let x = HalfTensor<T>(rounding: rows(dim, seed: UInt64(dim)))
                    let wide = Tensor(widening: x)
                    for c in try HalfCase.all(dim) {
                        let y = try forwardHalf(c.norm, x)
                        let floatPath = HalfTensor<T>(rounding: try c.norm.forward(wide))
                        #expect(halfBits(y) == halfBits(floatPath), "\(c.name) \(T.self) at \(level): not the rounded float forward")
                        let expected = try c.reference(wide)
                        let got = Tensor(widening: y).scalars
                        var worst = 0.0
                        for r in 0 ..< x.shape[0] {
                            let row = (r * dim) ..< ((r + 1) * dim)
                            let m = max(1, expected[row].map(abs).max()!)
                            for i in row {
                                let bound = ulp(expected[i], T.self) / 2 + 2e-6 * m
                                worst = max(worst, abs(Double(got[i]) - expected[i]) / bound)
                            }
                        }
                        #expect(worst <= 1, "\(c.name) \(T.self) at \(level): error \(worst) of the bound")
                    }
                }
            }
        }
    }

    @Test func bfloat16IsWithinHalfAnUlpOfTheFloat64Result() throws { try accuracy(BFloat16.self) }

    #if !(os(macOS) && arch(x86_64))
    @Test func float16IsWithinHalfAnUlpOfTheFloat64Result() throws { try accuracy(Float16.self) }
    #endif

    /// The fused add: the stream is the exact sum rounded once to T; the output is the
    /// plain forward of that stream, bit for bit; in every aliasing the float form allows.
    func fused<T: TestHalf>(_: T.Type) throws {
        for dim in [1, 17, 768, 4099] {
            let x = HalfTensor<T>(rounding: rows(dim, seed: 5))
            let r = HalfTensor<T>(rounding: rows(dim, seed: 6))
            let exact = zip(x.elements, r.elements).map { T.rounded(Self.value($0) + Self.value($1)) }
            for c in try HalfCase.all(dim) {
                var stream = r
                var out = x
                try c.norm.forward(x, addingTo: &stream, into: &out)
                #expect(stream.elements.map(\.bitPattern) == exact.map(\.bitPattern), "\(c.name) \(T.self): stream")
                let plain = try forwardHalf(c.norm, stream)
                #expect(halfBits(out) == halfBits(plain), "\(c.name) \(T.self): output")
                // Raw buffers: output is the stream (replaced by its norm), and input is the stream (doubled).
                var s2 = r.elements
                x.withUnsafeBufferPointer { xp in
                    s2.withUnsafeMutableBufferPointer { sp in
                        #expect(throws: Never.self) { try c.norm.forward(xp, addingTo: sp, into: sp) }
                    }
                }
                #expect(s2.map(\.bitPattern) == halfBits(plain), "\(c.name) \(T.self): output into the stream")
                var s3 = r.elements
                s3.withUnsafeMutableBufferPointer { sp in
                    let doubled = UnsafeBufferPointer(sp)
                    var o = [T](repeating: T(bitPattern: 0), count: sp.count)
                    o.withUnsafeMutableBufferPointer { op in
                        #expect(throws: Never.self) { try c.norm.forward(doubled, addingTo: sp, into: op) }
                    }
                }
                #expect(s3.map(\.bitPattern) == r.elements.map { T.rounded(2 * Self.value($0)).bitPattern })
            }
        }
    }

    static func value<T: HalfPrecisionElement>(_ v: T) -> Double {
        var f: Float = 0
        withUnsafePointer(to: v) { p in
            p.withMemoryRebound(to: UInt16.self, capacity: 1) { h in
                Kernels.half(T._halfFormat).widen(h, &f, 1)
            }
        }
        return Double(f)
    }

    @Test func bfloat16FusedAddRoundsTheStreamOnce() throws { try fused(BFloat16.self) }

    /// Sums that are float subnormals, in rows long enough for the pipelined walk, which
    /// narrows a whole block's sums in pairs (one VCVTNE2PS2BF16 where the CPU has it, an
    /// instruction that flushes them to zero; such a pair takes the integer rounding): the
    /// stream is still the exact sum rounded once, at every level, and the output the plain
    /// forward of that stream.
    @Test func bfloat16FusedAddKeepsSubnormalSums() throws {
        let dim = 1000, rows = 5
        let tiny = { (seed: UInt64) in
            try Tensor(shape: [rows, dim],
                       scalars: Tensor.randomNormal([rows, dim], seed: seed).scalars.map { $0 * 0x1p-125 })
        }
        let x = HalfTensor<BFloat16>(rounding: try tiny(41))
        let r = HalfTensor<BFloat16>(rounding: try tiny(42))
        let exact = zip(x.elements, r.elements).map { BFloat16(Self.value($0) + Self.value($1)).bitPattern }
        let subnormal = zip(x.elements, r.elements).filter {
            let s = Float(Self.value($0) + Self.value($1))
            return s != 0 && abs(s) < Float.leastNormalMagnitude
        }.count
        #expect(subnormal > rows * dim / 4, "the rows should hold many subnormal sums, not \(subnormal)")
        let layer = try LayerNorm(dim: dim)
        for level in InstructionSet.supported {
            try InstructionSet.with(level) {
                var stream = r
                var out = x
                try layer.forward(x, addingTo: &stream, into: &out)
                let wrongSums = zip(stream.elements, exact).filter { $0.bitPattern != $1 }.count
                #expect(wrongSums == 0, "\(wrongSums) sums not rounded once at \(level)")
                let plain = halfBits(try forwardHalf(layer, stream))
                let wrongOutputs = zip(halfBits(out), plain).filter { $0 != $1 }.count
                #expect(wrongOutputs == 0, "\(wrongOutputs) outputs differ from the plain forward at \(level)")
            }
        }
    }

    #if !(os(macOS) && arch(x86_64))
    @Test func float16FusedAddRoundsTheStreamOnce() throws { try fused(Float16.self) }
    #endif

    @Test func rawFormsCheckCountsAndOverlapsAndWriteNothingWhenTheyThrow() throws {
        let norm = try LayerNorm(dim: 4)
        var buffer = (0 ..< 16).map { BFloat16(Float($0)) }
        let before = buffer.map(\.bitPattern)
        buffer.withUnsafeMutableBufferPointer { p in
            let all = UnsafeBufferPointer(p)
            // Not a multiple of dim.
            #expect(throws: NormKitError.self) { try norm.forward(UnsafeBufferPointer(rebasing: all[0 ..< 6]), into: UnsafeMutableBufferPointer(rebasing: p[8 ..< 14])) }
            // Output count differs.
            #expect(throws: NormKitError.self) { try norm.forward(UnsafeBufferPointer(rebasing: all[0 ..< 4]), into: UnsafeMutableBufferPointer(rebasing: p[8 ..< 16])) }
            // Partial overlap: output starts one element into the input.
            #expect(throws: NormKitError.self) { try norm.forward(UnsafeBufferPointer(rebasing: all[0 ..< 8]), into: UnsafeMutableBufferPointer(rebasing: p[1 ..< 9])) }
            // The fused form: residual overlapping output by one element.
            #expect(throws: NormKitError.self) {
                try norm.forward(UnsafeBufferPointer(rebasing: all[0 ..< 4]), addingTo: UnsafeMutableBufferPointer(rebasing: p[4 ..< 8]),
                                 into: UnsafeMutableBufferPointer(rebasing: p[7 ..< 11]))
            }
        }
        #expect(buffer.map(\.bitPattern) == before)
        do {
            try buffer.withUnsafeMutableBufferPointer { p in
                try norm.forward(UnsafeBufferPointer(rebasing: p[0 ..< 6]), into: UnsafeMutableBufferPointer(rebasing: p[8 ..< 14]))
            }
            Issue.record("no error")
        } catch {
            #expect("\(error)".contains("bfloat16 values"), "\(error)")
        }
        // In place is allowed, and equals the out-of-place result.
        let x = HalfTensor<BFloat16>(rounding: rows(4, seed: 9))
        var inPlace = x.elements
        try inPlace.withUnsafeMutableBufferPointer { p in try norm.forward(UnsafeBufferPointer(p), into: p) }
        #expect(inPlace.map(\.bitPattern) == halfBits(try norm.forward(x)))
        // Tensor forms check shapes.
        var wrong = HalfTensor<BFloat16>(rounding: Tensor.zeros([2, 4]))
        #expect(throws: NormKitError.self) { try norm.forward(x, into: &wrong) }
        #expect(throws: NormKitError.self) { try norm.forward(HalfTensor<BFloat16>(rounding: Tensor.zeros([2, 5]))) }
    }

    @Test(arguments: [768, 33, 4099])
    func bitwiseTheSameForOneAndTwoThreads(dim: Int) throws {
        let count = max(64, 6 * RowParallel.blockSize(dim: dim) + 3)
        var norm = try LayerNorm(dim: dim)
        norm.weight = Tensor.randomNormal([dim], mean: 1, standardDeviation: 0.3, seed: 41)
        let x = HalfTensor<BFloat16>(rounding: Tensor.randomNormal([count, dim], mean: 0.5, standardDeviation: 2, seed: 42))
        let h = HalfTensor<BFloat16>(rounding: Tensor.randomNormal([count, dim], standardDeviation: 2, seed: 43))
        let one = try Split.run(threads: 1, "one thread") { try norm.forward(x) }
        let two = try Split.run(threads: 2, "two threads, dim \(dim)") { try norm.forward(x) }
        #expect(halfBits(one) == halfBits(two))
        // Each call starts from the same stream.
        func fused() throws -> [UInt16] {
            var s = h, o = x
            try norm.forward(x, addingTo: &s, into: &o)
            return halfBits(s) + halfBits(o)
        }
        let fusedOne = try Split.run(threads: 1, "fused, one thread") { try fused() }
        let fusedTwo = try Split.run(threads: 2, "fused, two threads, dim \(dim)") { try fused() }
        #expect(fusedOne == fusedTwo)
    }

    @Test func groupNormTakesHalfTensorsThroughTheEngine() throws {
        var norm = try GroupNorm(groups: 3, channels: 6)
        norm.weight = Tensor.randomNormal([6], mean: 1, standardDeviation: 0.3, seed: 51)
        norm.bias = Tensor.randomNormal([6], standardDeviation: 0.3, seed: 52)
        // Enough rows that chunks start at rows that are not multiples of the group count.
        let x = HalfTensor<BFloat16>(rounding: Tensor.randomNormal([40, 6, 9, 11], mean: 3, standardDeviation: 2, seed: 53))
        let y = try norm.forward(x)
        #expect(halfBits(y) == halfBits(HalfTensor<BFloat16>(rounding: try norm.forward(Tensor(widening: x)))))
    }

    @Test func halfTensorsFromLittleEndianBytes() throws {
        let bytes: [UInt8] = [0x80, 0x3f, 0x00, 0xc0, 0xc0, 0x7f, 0x00, 0x00]
        let t = try bytes.withUnsafeBytes { try HalfTensor<BFloat16>(shape: [2, 2], littleEndianBytes: $0) }
        #expect(t.elements.map(\.bitPattern) == [0x3f80, 0xc000, 0x7fc0, 0])
        #expect(Tensor(widening: t).scalars.prefix(2) == [1, -2])
        #expect(throws: NormKitError.self) { try bytes.withUnsafeBytes { try HalfTensor<BFloat16>(shape: [3], littleEndianBytes: $0) } }
    }
}

@Suite("Half-precision safetensors")
struct HalfSafeTensorsTests {
    @Test func bf16AndF16TensorsReadAsHalfTensorsWithTheirBits() throws {
        let header = #"{"a":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]},"b":{"dtype":"F16","shape":[2],"data_offsets":[8,12]},"c":{"dtype":"F32","shape":[1],"data_offsets":[12,16]},"s":{"dtype":"BF16","shape":[],"data_offsets":[16,18]}}"#
        let data: [UInt8] = [0x80, 0x3f, 0x00, 0xc0, 0xc0, 0x7f, 0x01, 0x00,  // bf16 1, -2, NaN, smallest subnormal
                             0x00, 0x3c, 0xff, 0x7b,                          // f16 1, 65504
                             0x00, 0x00, 0x80, 0x3f,                          // f32 1
                             0x80, 0x3f]
        let file = try SafeTensors(data: safetensorsBytes(header, data))
        let a = try file.halfTensor(named: "a", as: BFloat16.self)
        #expect(a.shape == [2, 2] && a.elements.map(\.bitPattern) == [0x3f80, 0xc000, 0x7fc0, 0x0001])
        #if !(os(macOS) && arch(x86_64))
        let b = try file.halfTensor(named: "b", as: Float16.self)
        #expect(b.elements.map(\.bitPattern) == [0x3c00, 0x7bff])
        #expect(throws: NormKitError.self) { try file.halfTensor(named: "a", as: Float16.self) }
        #endif
        #expect(throws: NormKitError.self) { try file.halfTensor(named: "c", as: BFloat16.self) }
        #expect(throws: NormKitError.self) { try file.halfTensor(named: "s", as: BFloat16.self) }
        #expect(throws: NormKitError.self) { try file.halfTensor(named: "missing", as: BFloat16.self) }
        // Normalised straight from the file's bytes: the same bits as through a float copy.
        let norm = try LayerNorm(dim: 2)
        let finite = try HalfTensor<BFloat16>(shape: [1, 2], elements: Array(a.elements.prefix(2)))
        #expect(try norm.forward(finite).elements.map(\.bitPattern)
                == HalfTensor<BFloat16>(rounding: try norm.forward(Tensor(widening: finite))).elements.map(\.bitPattern))
    }
}
