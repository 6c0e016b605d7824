// Float16 .npy files read into and written from a HalfTensor<Float16>: the 2-byte
// patterns as they are, never widened to Float. In a file of its own (named *+Half.swift)
// so that scripts/fuzz.sh builds the parsers without the norms' element types.
// bfloat16 has no NumPy dtype: BF16 activations come from safetensors
// (SafeTensors.halfTensor(named:as:)).
import NormKit
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if !(os(macOS) && arch(x86_64))
extension HalfTensor where Element == Float16 {
    /// Reads a NumPy `.npy` file of float16 values (memory-mapped while it is read).
    ///
    /// See ``init(npyData:)`` for what is read and refused.
    ///
    /// - Throws: `NormKitError.io(path:reason:)` when the file cannot be read, and what
    ///   ``init(npyData:)`` throws.
    public init(npyContentsOf url: URL) throws(NormKitError) {
        try self.init(npyData: FileAccess.read(url, framing: .npy))
    }

    /// Reads a NumPy `.npy` file of dtype `<f2` or `>f2` held in memory, keeping every
    /// element's 16 bits (byte-swapped for `>f2`): format versions 1.0, 2.0 and 3.0, C
    /// order, or Fortran order transposed into C order.
    ///
    /// ```swift
    /// let x = try HalfTensor<Float16>(npyContentsOf: URL(fileURLWithPath: "x.npy"))
    /// let y = try norm.forward(x)          // HalfTensor<Float16>
    /// try y.writeNPY(to: URL(fileURLWithPath: "y.npy"))
    /// ```
    ///
    /// - Throws: `NormKitError.invalidFile(format:offset:reason:)` for a malformed file,
    ///   `NormKitError.unsupported(format:reason:)` for another dtype (`Tensor(npyData:)`
    ///   reads `<f4`, `<f8` and the others as Float) or a 0-d array.
    public init(npyData data: Data) throws(NormKitError) {
        let result = data.withUnsafeBytes { raw -> Result<Self, NormKitError> in
            do throws(NormKitError) {
                return .success(try Self(parsingHalfNPY: raw))
            } catch { return .failure(error) }
        }
        self = try result.get()
    }

    private init(parsingHalfNPY file: UnsafeRawBufferPointer) throws(NormKitError) {
        let header = try NPYHeader(parsing: file)
        guard header.dtype == "<f2" || header.dtype == ">f2" else {
            throw .unsupported(format: NPYHeader.format,
                               reason: "dtype '\(header.dtype)'; a HalfTensor<Float16> reads <f2 or >f2 (Tensor(npyData:) reads \(NPYHeader.supportedDTypes.joined(separator: ", ")) as Float)")
        }
        guard !header.shape.isEmpty else {
            throw .unsupported(format: NPYHeader.format, reason: "a 0-d array (shape ()) has no rank >= 1 HalfTensor; save it with np.atleast_1d")
        }
        // Validated by the header parser: the product fits and the data is exactly 2 bytes an element.
        let count = Shape.product(header.shape)!
        let source = UnsafeRawBufferPointer(rebasing: file[header.dataOffset...])
        let swap = header.dtype == ">f2"
        // Element k of the file, as its bit pattern.
        func pattern(_ k: Int) -> UInt16 {
            let a = UInt16(source[2 &* k]), b = UInt16(source[2 &* k &+ 1])
            return swap ? a << 8 | b : b << 8 | a
        }
        // The patterns in file order; a Fortran-order file is then transposed as the
        // float reader does (NPYOrder.fortranToC).
        var bits = [UInt16](unsafeUninitializedCapacity: count) { out, initialized in
            for k in 0 ..< count { out[k] = pattern(k) }
            initialized = count
        }
        if header.fortranOrder && header.shape.count > 1 {
            let fortran = bits
            fortran.withUnsafeBufferPointer { src in
                bits.withUnsafeMutableBufferPointer { NPYOrder.fortranToC(src, shape: header.shape, into: $0) }
            }
        }
        try self.init(shape: header.shape, bitPatterns: bits)
    }

    /// The tensor as a NumPy `.npy` file: version 1.0, dtype `<f2`, C order, the bytes
    /// `np.save` writes for the same float16 array.
    ///
    /// - Throws: `NormKitError.unsupported(format:reason:)` for a tensor of more than
    ///   ``NPYHeader/maxRank`` dimensions, which NumPy and ``init(npyData:)`` do not read.
    public func npyData() throws(NormKitError) -> Data {
        guard rank <= NPYHeader.maxRank else {
            throw .unsupported(format: NPYHeader.format,
                               reason: "a tensor of rank \(rank); a .npy file holds at most \(NPYHeader.maxRank) dimensions (NumPy's limit)")
        }
        let header = NPYHeader.encodeHeader(shape: shape, descr: "<f2")
        var bytes = header
        bytes.reserveCapacity(header.count + scalarCount * 2)
        for element in elements {
            let bits = element.bitPattern
            bytes.append(UInt8(truncatingIfNeeded: bits))
            bytes.append(UInt8(truncatingIfNeeded: bits >> 8))
        }
        let out = Data(bytes)
        return out
    }

    /// Writes the tensor to `url` as a `.npy` file (see ``npyData()``), atomically:
    /// nothing is left half-written.
    ///
    /// - Throws: what ``npyData()`` throws, or `NormKitError.io(path:reason:)`.
    public func writeNPY(to url: URL) throws(NormKitError) {
        try FileAccess.write(npyData(), to: url)
    }
}
#endif
