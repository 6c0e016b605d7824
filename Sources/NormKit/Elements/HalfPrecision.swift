// The 16-bit element types NormKit normalises: BFloat16 and Swift's Float16. Both are
// stored as 16-bit patterns; the kernel layer converts them (CNormKernels nk_half.h),
// in registers inside LayerNorm's row kernel or through float scratch for the other
// norms, and every result is the float row kernels' on the widened rows, narrowed once
// (Normalization+Half.swift, docs/architecture.md "Half-precision elements").

import CNormKernels

/// A 16-bit floating-point element NormKit reads and writes: ``BFloat16`` and
/// `Float16`. Weights, biases and all arithmetic stay `Float`.
public protocol HalfPrecisionElement: Sendable, Hashable {
    /// The value with these 16 bits.
    init(bitPattern: UInt16)
    /// The 16 bits.
    var bitPattern: UInt16 { get }
    /// `value` rounded to nearest, ties to even (NaN stays NaN, overflow gives infinity).
    init(_ value: Float)
    /// The kernel layer's format of this type.
    static var _halfFormat: _HalfFormat { get }
}

/// A 16-bit format the kernel layer converts.
public enum _HalfFormat: Sendable {
    case bfloat16, float16

    var name: String { self == .bfloat16 ? "bfloat16" : "float16" }

    /// The kernel layer's code of the format (NK_ELEM_BF16, NK_ELEM_F16).
    var elementCode: Int32 { self == .bfloat16 ? NK_ELEM_BF16 : NK_ELEM_F16 }
}

extension BFloat16: HalfPrecisionElement {
    public static var _halfFormat: _HalfFormat { .bfloat16 }
}

// Swift has no Float16 on macOS x86-64; everywhere else (Linux, arm64 macOS) it does.
#if !(os(macOS) && arch(x86_64))
extension Float16: HalfPrecisionElement {
    public static var _halfFormat: _HalfFormat { .float16 }
}
#endif
