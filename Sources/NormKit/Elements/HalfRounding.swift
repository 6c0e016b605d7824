// How a half-precision RMSNorm rounds its output (docs/numerics.md, "Half-precision
// elements": "Hugging Face's cast order").

/// The order of roundings of an ``RMSNorm``'s half-precision forms (``BFloat16`` or
/// `Float16` in and out). The float32 forms ignore it.
public enum HalfRounding: Sendable, Hashable, CaseIterable {
    /// x̂ = x·rrms and the scale in float32, rounded once to the half type: the nearest
    /// result NormKit can give, and Hugging Face's `GemmaRMSNorm` order (`(1 + w)` in
    /// float32, then one rounding) for a layer with `weightOffset` 1.
    case once
    /// Hugging Face's `LlamaRMSNorm` order, for comparing with a PyTorch run bit for bit
    /// (up to PyTorch's own float32 statistics): x̂ rounded to the half type T, then
    /// multiplied by the scale rounded to T, and rounded again:
    /// `T(Float(T(x̂)) · Float(T(weightOffset + weight)))` (the product of two halves is
    /// exact in float32, so this is PyTorch's half × half multiply).
    case huggingFaceLlama
}
