// SafeTensors' half-precision reader, in a file of its own: the parsers stay free of the
// norms' element types, so scripts/fuzz.sh builds them without the kernel layer.
import NormKit
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension SafeTensors {
    /// The `BF16` tensor `name` as a `HalfTensor<BFloat16>`, or the `F16` tensor `name` as a
    /// `HalfTensor<Float16>`: its bytes copied once, never widened to `Float`, ready for
    /// the norms' half-precision forms.
    ///
    /// ```swift
    /// let h = try file.halfTensor(named: "hidden_states", as: BFloat16.self)
    /// let y = try norm.forward(h)          // HalfTensor<BFloat16>
    /// ```
    ///
    /// - Parameters:
    ///   - name: the tensor's name in the file.
    ///   - type: `BFloat16` (reads `BF16`) or `Float16` (reads `F16`).
    /// - Throws: `NormKitError.missingTensor(name:available:)` listing the file's tensors,
    ///   or `NormKitError.unsupported(format:reason:)` when the tensor's dtype is not the
    ///   one `type` stores (use ``tensor(named:allowingOverflow:)`` to read any float dtype
    ///   as `Float`) or it is a scalar (shape `[]`).
    public func halfTensor<T: HalfPrecisionElement>(named name: String, as type: T.Type = T.self) throws(NormKitError) -> HalfTensor<T> {
        guard let info = infos[TensorName(name)] else { throw .missingTensor(name: name, available: names) }
        let wanted: DType = T._halfFormat == .bfloat16 ? .bf16 : .f16
        guard info.dtype == wanted else {
            throw .unsupported(format: "safetensors",
                               reason: "tensor '\(info.name)' has dtype \(info.dtype.rawValue); a HalfTensor<\(T.self)> reads \(wanted.rawValue)")
        }
        guard !info.shape.isEmpty else {
            throw .unsupported(format: "safetensors",
                               reason: "tensor '\(info.name)' is a scalar (shape []); a HalfTensor needs rank >= 1")
        }
        let start = dataStart + info.dataOffsets.lowerBound
        // Validated at open: the product fits, and the byte range (2 bytes per element) lies in the data area.
        let result = storage.withUnsafeBytes { raw -> Result<HalfTensor<T>, NormKitError> in
            do throws(NormKitError) {
                return .success(try HalfTensor<T>(
                    shape: info.shape, littleEndianBytes: UnsafeRawBufferPointer(rebasing: raw[start ..< (start + info.dataOffsets.count)])))
            } catch { return .failure(error) }
        }
        return try result.get()
    }
}
