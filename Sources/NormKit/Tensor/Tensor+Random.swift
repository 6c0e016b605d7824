extension Tensor {
    /// A tensor of normally distributed values, the same for the same seed on
    /// every platform and every run.
    ///
    /// Uses SplitMix64 for the bits and the Box–Muller transform in `Double`, so
    /// the stream depends on nothing but `seed`.
    public static func randomNormal(
        _ shape: [Int], mean: Float = 0, standardDeviation: Float = 1, seed: UInt64
    ) -> Tensor {
        var generator = SplitMix64(seed: seed)
        var result = Tensor.zeros(shape)
        let m = Double(mean), s = Double(standardDeviation)
        result.withUnsafeMutableBufferPointer { buffer in
            var i = 0
            while i < buffer.count {
                let (a, b) = generator.nextGaussianPair()
                buffer[i] = Float(m + s * a)
                if i + 1 < buffer.count { buffer[i + 1] = Float(m + s * b) }
                i += 2
            }
        }
        return result
    }

    /// A tensor of values uniform in `[lower, upper)`, deterministic in `seed`.
    public static func randomUniform(
        _ shape: [Int], lower: Float = 0, upper: Float = 1, seed: UInt64
    ) -> Tensor {
        var generator = SplitMix64(seed: seed)
        var result = Tensor.zeros(shape)
        let lo = Double(lower), width = Double(upper) - Double(lower)
        result.withUnsafeMutableBufferPointer { buffer in
            for i in buffer.indices { buffer[i] = Float(lo + width * generator.nextUnitDouble()) }
        }
        return result
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny, well-mixed, seedable generator.
struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1), 53 random bits.
    mutating func nextUnitDouble() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// Two independent standard normal values (Box–Muller).
    mutating func nextGaussianPair() -> (Double, Double) {
        let u1 = 1 - nextUnitDouble()  // (0, 1]: log is finite
        let u2 = nextUnitDouble()
        let r = (-2 * _log(u1)).squareRoot()
        let t = 2 * Double.pi * u2
        return (r * _cos(t), r * _sin(t))
    }
}
