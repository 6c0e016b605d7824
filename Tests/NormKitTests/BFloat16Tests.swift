@testable import NormKit
import Testing

/// The conversion every bfloat16 narrowing must equal: the nearest bfloat16 to `x`,
/// ties to even, found by comparing `x` with the two neighbours in Double (no bit tricks).
private func nearestBFloat16(_ x: Float) -> UInt16 {
    if x.isNaN { return UInt16(truncatingIfNeeded: x.bitPattern >> 16) | 0x40 }
    let down = UInt16(truncatingIfNeeded: x.bitPattern >> 16)  // toward zero
    if x.bitPattern & 0xffff == 0 { return down }
    let up = down &+ 1  // away from zero (infinity past the largest finite)
    let m = Double(abs(x))
    let a = Double(abs(Float(bitPattern: UInt32(down) << 16)))
    // Infinity's rounding interval starts where 2^128 would be the next value.
    let b = (up & 0x7fff) == 0x7f80 ? 0x1p128 : Double(abs(Float(bitPattern: UInt32(up) << 16)))
    if m - a < b - m { return down }
    if m - a > b - m { return up }
    return down & 1 == 0 ? down : up
}

@Suite("BFloat16")
struct BFloat16Tests {
    @Test func knownBitPatterns() {
        #expect(BFloat16(Float(1)).bitPattern == 0x3f80)
        #expect(BFloat16(Float(-2)).bitPattern == 0xc000)
        #expect(BFloat16(Float(0)).bitPattern == 0x0000)
        #expect(BFloat16(-Float(0)).bitPattern == 0x8000)
        // Ties to even: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 (odd) -> 1.
        #expect(BFloat16(Float(1) + 0x1p-8).bitPattern == 0x3f80)
        // 1 + 3·2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even) -> up.
        #expect(BFloat16(Float(1) + 3 * 0x1p-8).bitPattern == 0x3f82)
        // Just above a tie rounds up.
        #expect(BFloat16((Float(1) + 0x1p-8).nextUp).bitPattern == 0x3f81)
        // Overflow: the largest float rounds to infinity; so does halfway to 2^128.
        #expect(BFloat16(Float.greatestFiniteMagnitude).bitPattern == 0x7f80)
        #expect(BFloat16(Float(bitPattern: 0x7f7f_8000)).bitPattern == 0x7f80)
        #expect(BFloat16(Float(bitPattern: 0x7f7f_7fff)).bitPattern == 0x7f7f)
        #expect(BFloat16(-Float.infinity).bitPattern == 0xff80)
        // Subnormals: the smallest float subnormal rounds to zero; bfloat16's own round trip.
        #expect(BFloat16(Float.leastNonzeroMagnitude).bitPattern == 0x0000)
        #expect(BFloat16(Float(bitPattern: 0x0001_8000)).bitPattern == 0x0002)  // tie, 1 odd -> 2
        #expect(BFloat16(Float(bitPattern: 0x0000_8000)).bitPattern == 0x0000)  // tie, 0 even -> 0
        #expect(BFloat16(Float(bitPattern: 0x0000_8001)).bitPattern == 0x0001)
        #expect(Float(BFloat16.leastNonzeroMagnitude) == 0x1p-133)
        // NaN stays NaN, quiet, with its sign; a signalling payload is kept in the top bits.
        #expect(BFloat16(Float.nan).isNaN)
        #expect(BFloat16(Float(bitPattern: 0x7f80_0001)).bitPattern == 0x7fc0)  // payload only in the low half
        #expect(BFloat16(Float(bitPattern: 0xffa0_0000)).bitPattern == 0xffe0)
        #expect(Float(BFloat16(bitPattern: 0x7fc1)).isNaN)
    }

    @Test func narrowingMatchesTheNearestNeighbourOnEdgeFloats() {
        // Every bfloat16 value's neighbourhood: its midpoints with the next value, and a
        // float either side of each midpoint, for every exponent and a spread of significands.
        var checked = 0
        for high in stride(from: 0, through: 0xffff, by: 3) {
            for low: UInt32 in [0, 1, 0x7fff, 0x8000, 0x8001, 0xffff, 0x1234] {
                let x = Float(bitPattern: UInt32(high) << 16 | low)
                #expect(BFloat16(x).bitPattern == nearestBFloat16(x), "\(x.bitPattern)")
                checked += 1
            }
        }
        #expect(checked > 100_000)
    }

    @Test func wideningIsExactAndRoundTrips() {
        for bits in 0 ... UInt16.max {
            let h = BFloat16(bitPattern: bits)
            let f = Float(h)
            if h.isNaN {
                #expect(f.isNaN)
            } else {
                #expect(f.bitPattern == UInt32(bits) << 16)
                #expect(BFloat16(f).bitPattern == bits)
            }
        }
    }

    @Test func doubleConversionRoundsOnce() {
        // 1 + 2^-8 + 2^-30: rounding to float gives the tie 1 + 2^-8, which would then go
        // to 1; the double is above the tie, so the bfloat16 is 1 + 2^-7.
        #expect(BFloat16(1.0 + 0x1p-8 + 0x1p-30).bitPattern == 0x3f81)
        #expect(BFloat16(1.0 + 0x1p-8 - 0x1p-30).bitPattern == 0x3f80)
        #expect(BFloat16(1.0 + 0x1p-8).bitPattern == 0x3f80)
    }

    @Test func equalityIsTheFloatValues() {
        #expect(BFloat16(Float(0)) == BFloat16(-Float(0)))
        #expect(BFloat16.nan != BFloat16.nan)
        #expect(Set([BFloat16(Float(0)), BFloat16(-Float(0))]).count == 1)
        #expect(BFloat16(Float(1)) < BFloat16(Float(2)))
        #expect(BFloat16(Float(1.5)).description == "1.5")
        #expect(BFloat16(Float(1)).ulp == 0x1p-7)
    }

    @Test func theKernelLayerGivesTheSameBitsAtEveryLevel() throws {
        // Widening: every 16-bit pattern, both formats. Narrowing: edge floats (as above)
        // and random ones. Every level (and its instruction-set variant: F16C, AVX-512,
        // AVX-512 BF16) must give the baseline's integer bits, which for bfloat16 are
        // BFloat16.init's.
        let all = (0 ... UInt16.max).map { $0 }
        var floats: [Float] = []
        for high in stride(from: 0, through: 0xffff, by: 1) {
            for low: UInt32 in [0, 0x7fff, 0x8000, 0x8001, 0xfff, 0x1000, 0x1001, 0x2000, 0xffff] {
                floats.append(Float(bitPattern: UInt32(high) << 16 | low))
            }
        }
        var rng = SystemRandomNumberGenerator()
        for _ in 0 ..< 100_000 { floats.append(Float(bitPattern: rng.next())) }
        floats.append(contentsOf: [65504, 65519.996, 65520, 0x1p-24, 0x1p-25, 0x1.8p-25, 0x1p-14, 0x1.ff8p-15])
        func run(_ level: InstructionSet) throws -> [[UInt32]] {
            try InstructionSet.with(level) {
                var result: [[UInt32]] = []
                for format in [_HalfFormat.bfloat16, .float16] {
                    let k = Kernels.half(format)
                    var wide = [Float](repeating: 0, count: all.count)
                    all.withUnsafeBufferPointer { h in
                        wide.withUnsafeMutableBufferPointer { k.widen(h.baseAddress!, $0.baseAddress!, all.count) }
                    }
                    result.append(wide.map(\.bitPattern))
                    var narrow = [UInt16](repeating: 0, count: floats.count)
                    floats.withUnsafeBufferPointer { f in
                        narrow.withUnsafeMutableBufferPointer { k.narrow(f.baseAddress!, $0.baseAddress!, floats.count) }
                    }
                    result.append(narrow.map { UInt32($0) })
                }
                return result
            }
        }
        let base = try run(.baseline)
        #expect(base[1] == floats.map { UInt32(BFloat16($0).bitPattern) })
        #if !(os(macOS) && arch(x86_64))
        // Float16: Swift's own conversion agrees on every non-NaN.
        for (i, f) in floats.enumerated() where !f.isNaN {
            if base[3][i] != UInt32(Float16(f).bitPattern) {
                Issue.record("float16 narrowing of \(f.bitPattern): \(base[3][i]) vs Float16's \(Float16(f).bitPattern)")
                break
            }
        }
        for bits in all where !Float16(bitPattern: bits).isNaN {
            #expect(base[2][Int(bits)] == Float(Float16(bitPattern: bits)).bitPattern)
        }
        #endif
        for level in InstructionSet.supported where level != .baseline {
            let other = try run(level)
            for (k, name) in ["bf16 widen", "bf16 narrow", "f16 widen", "f16 narrow"].enumerated() {
                let i = other[k].indices.first { other[k][$0] != base[k][$0] }
                let method = try InstructionSet.with(level) { Kernels.halfMethod(k < 2 ? .bfloat16 : .float16) }
                #expect(i == nil, "\(level) (\(method)) \(name) differs at \(i ?? -1)")
            }
        }
    }
}
