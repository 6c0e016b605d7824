// Decoding the on-disk float formats (IEEE half, bfloat16, float32, float64, either
// byte order) into Float. Every read is an unaligned load from a raw byte buffer:
// neither safetensors nor .npy promises aligned data.
import NormKit

/// A floating-point storage format of a checkpoint or array file.
enum StoredFloat: Sendable, Equatable {
    /// IEEE 754 binary16.
    case half
    /// bfloat16: the top 16 bits of a binary32.
    case bfloat16
    /// IEEE 754 binary32.
    case single
    /// IEEE 754 binary64 (rounded to nearest Float; beyond Float's range it becomes ±infinity,
    /// which ``decode(_:bigEndian:from:into:)`` reports).
    case double

    /// Bytes per element.
    var byteCount: Int {
        switch self {
        case .half, .bfloat16: return 2
        case .single: return 4
        case .double: return 8
        }
    }

    /// Converts `destination.count` elements stored at the start of `source`.
    ///
    /// - Returns: the index of the first finite value that became infinite (only binary64
    ///   values beyond Float's range, ±3.4028235e38 after rounding), or nil.
    /// - Precondition: `source.count >= destination.count * byteCount` (checked by
    ///   the file validators before this is called).
    @discardableResult
    static func decode(
        _ format: StoredFloat, bigEndian: Bool,
        from source: UnsafeRawBufferPointer, into destination: UnsafeMutableBufferPointer<Float>
    ) -> Int? {
        let n = destination.count
        precondition(source.count >= n &* format.byteCount, "decode: source too short")
        guard n > 0, let src = source.baseAddress, let dst = destination.baseAddress else { return nil }
        let nativeBigEndian = 1.bigEndian == 1
        switch format {
        case .single:
            if bigEndian == nativeBigEndian {
                // Same byte order: a plain copy (memcpy copes with any alignment).
                UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: n &* 4)
            } else {
                for i in 0..<n {
                    let bits = src.loadUnaligned(fromByteOffset: i &* 4, as: UInt32.self).byteSwapped
                    dst[i] = Float(bitPattern: bits)
                }
            }
        case .double:
            let swap = bigEndian != nativeBigEndian
            var firstOverflow: Int?
            for i in 0..<n {
                let raw = src.loadUnaligned(fromByteOffset: i &* 8, as: UInt64.self)
                let value = Double(bitPattern: swap ? raw.byteSwapped : raw)
                let single = Float(value)
                if single.isInfinite && value.isFinite && firstOverflow == nil { firstOverflow = i }
                dst[i] = single
            }
            return firstOverflow
        case .half:
            // Separate loops per byte order keep the per-element work branch-free.
            if bigEndian == nativeBigEndian {
                for i in 0..<n { dst[i] = floatFromHalf(src.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self)) }
            } else {
                for i in 0..<n {
                    dst[i] = floatFromHalf(src.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self).byteSwapped)
                }
            }
        case .bfloat16:
            // bfloat16 is the top half of a binary32: shift into place.
            if bigEndian == nativeBigEndian {
                for i in 0..<n {
                    dst[i] = Float(bitPattern: UInt32(src.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self)) << 16)
                }
            } else {
                for i in 0..<n {
                    let bits = src.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self).byteSwapped
                    dst[i] = Float(bitPattern: UInt32(bits) << 16)
                }
            }
        }
        return nil
    }

    /// The error for a binary64 value beyond Float's range, unless the caller allowed it.
    static func overflowError(format: String, what: String, index: Int) -> NormKitError {
        .unsupported(format: format,
                     reason: "\(what): element \(index) is a float64 beyond Float's range (±3.4028235e38) and would become "
                        + "infinite (and its row NaN); to read such values as ±infinity, allow overflow "
                        + "(allowingOverflow: true; normkit apply --allow-overflow)")
    }

    /// Stores `source` as binary32 in the given byte order at the start of `destination`.
    ///
    /// - Precondition: `destination.count >= source.count * 4`.
    static func encodeSingle(
        _ source: UnsafeBufferPointer<Float>, bigEndian: Bool, into destination: UnsafeMutableRawBufferPointer
    ) {
        let n = source.count
        precondition(destination.count >= n &* 4, "encodeSingle: destination too short")
        guard n > 0, let src = source.baseAddress, let dst = destination.baseAddress else { return }
        if bigEndian == (1.bigEndian == 1) {
            dst.copyMemory(from: src, byteCount: n &* 4)
        } else {
            for i in 0..<n {
                dst.storeBytes(of: src[i].bitPattern.byteSwapped, toByteOffset: i &* 4, as: UInt32.self)
            }
        }
    }

    /// The exact Float value of an IEEE binary16 bit pattern (every half is a Float).
    ///
    /// Normal: re-bias the exponent (15 -> 127) and widen the mantissa (10 -> 23 bits).
    /// Subnormal: mantissa x 2^-24, exact in Float. Infinity and NaN keep their payload.
    @inline(__always)
    static func floatFromHalf(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = UInt32(h >> 10) & 0x1F
        let mantissa = UInt32(h & 0x3FF)
        if exponent == 0x1F {
            return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        }
        if exponent == 0 {
            let magnitude = Float(mantissa) * 0x1p-24
            return sign == 0 ? magnitude : -magnitude
        }
        return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
    }
}
