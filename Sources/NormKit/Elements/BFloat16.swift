// bfloat16: a float's top 16 bits (sign, 8 exponent bits, 7 significand bits). Its
// conversions are the kernel layer's (kernels/half.h), one element at a time:
// widening is exact, narrowing rounds to nearest, ties to even.

/// A 16-bit brain floating-point value: float32's sign and exponent range with 8 bits
/// of precision, the storage format of most published model weights and activations.
///
/// NormKit stores it and converts it; arithmetic goes through `Float`:
///
/// ```swift
/// let h = BFloat16(1.00390625)          // a tie: rounds to the even neighbour, 1
/// let x = Float(h) * 2                  // exact widening
/// let raw = BFloat16(bitPattern: 0x3f80) // 1.0
/// ```
///
/// Equality and hashing are those of the `Float` value (so `-0 == +0` and a NaN is
/// unequal to everything, as for `Float16`); use ``bitPattern`` to compare bits.
public struct BFloat16: Sendable, Hashable, Comparable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The 16 bits: sign, 8-bit exponent (bias 127), 7-bit significand.
    public var bitPattern: UInt16

    /// The value with these 16 bits.
    public init(bitPattern: UInt16) {
        self.bitPattern = bitPattern
    }

    /// `value` rounded to the nearest bfloat16, ties to even. Values beyond the
    /// largest finite bfloat16 (by at least half its ulp) become ±infinity; values below
    /// its smallest normal round into its subnormals (or to ±0). A NaN stays a NaN (quiet,
    /// same sign, the payload's top bits).
    public init(_ value: Float) {
        let u = value.bitPattern
        if u & 0x7fff_ffff > 0x7f80_0000 {
            bitPattern = UInt16(truncatingIfNeeded: u >> 16) | 0x0040
        } else {
            // Adding 0x7fff + (lowest kept bit) carries into the kept half exactly when the
            // dropped half is above one half, or one half with an odd kept part. A carry out
            // of the significand bumps the exponent; out of the top finite binade, to infinity.
            bitPattern = UInt16(truncatingIfNeeded: (u &+ 0x7fff &+ ((u >> 16) & 1)) >> 16)
        }
    }

    /// `value` rounded once to bfloat16 (through `Float` would round twice).
    public init(_ value: Double) {
        let f = Float(value)
        // A double exactly halfway between two bfloat16 values, or just off halfway, can
        // round to a float that is exactly halfway: then the direction from the double decides.
        let wide = Double(f)
        if f.isFinite, wide != value, f.bitPattern & 0xffff == 0x8000 {
            let toward = value > wide ? f.nextUp : f.nextDown
            self.init(toward)
        } else {
            self.init(f)
        }
    }

    /// The value as a `Float`, exactly.
    public var floatValue: Float { Float(bitPattern: UInt32(bitPattern) << 16) }

    public var isNaN: Bool { bitPattern & 0x7fff > 0x7f80 }
    public var isFinite: Bool { bitPattern & 0x7f80 != 0x7f80 }
    public var isInfinite: Bool { bitPattern & 0x7fff == 0x7f80 }
    public var isSubnormal: Bool { bitPattern & 0x7f80 == 0 && bitPattern & 0x007f != 0 }
    public var isZero: Bool { bitPattern & 0x7fff == 0 }

    /// The distance from `|self|` to the next larger bfloat16 in magnitude (NaN for a
    /// NaN or an infinity).
    public var ulp: Float {
        guard isFinite else { return .nan }
        let exponent = Int((bitPattern >> 7) & 0xff)
        return Float(sign: .plus, exponent: max(exponent, 1) - 127 - 7, significand: 1)
    }

    public static let infinity = BFloat16(bitPattern: 0x7f80)
    public static let nan = BFloat16(bitPattern: 0x7fc0)
    /// 3.3895314e38: the largest finite bfloat16.
    public static let greatestFiniteMagnitude = BFloat16(bitPattern: 0x7f7f)
    /// 2^-126.
    public static let leastNormalMagnitude = BFloat16(bitPattern: 0x0080)
    /// 2^-133.
    public static let leastNonzeroMagnitude = BFloat16(bitPattern: 0x0001)

    public static func == (a: BFloat16, b: BFloat16) -> Bool { a.floatValue == b.floatValue }
    public static func < (a: BFloat16, b: BFloat16) -> Bool { a.floatValue < b.floatValue }
    public func hash(into hasher: inout Hasher) { floatValue.hash(into: &hasher) }

    public var description: String { floatValue.description }
    public var debugDescription: String { "BFloat16(\(floatValue.debugDescription))" }
}

extension Float {
    /// The bfloat16 `value`, exactly.
    public init(_ value: BFloat16) {
        self = value.floatValue
    }
}

extension Double {
    /// The bfloat16 `value`, exactly.
    public init(_ value: BFloat16) {
        self = Double(value.floatValue)
    }
}
