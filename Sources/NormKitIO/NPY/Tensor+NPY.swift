// Tensors from and to NumPy .npy files; the header is parsed in NPYHeader.swift.
import NormKit
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension Tensor {
    /// Reads a NumPy `.npy` file (memory-mapped while it is converted).
    ///
    /// See ``init(npyData:allowingOverflow:)`` for what is read and refused.
    ///
    /// - Throws: `NormKitError.io(path:reason:)` when the file cannot be read, and
    ///   what ``init(npyData:allowingOverflow:)`` throws.
    public init(npyContentsOf url: URL, allowingOverflow: Bool = false) throws(NormKitError) {
        try self.init(npyData: FileAccess.read(url, framing: .npy), allowingOverflow: allowingOverflow)
    }

    /// Reads a NumPy `.npy` file held in memory: format versions 1.0, 2.0 and 3.0;
    /// dtypes `<f4`, `<f8`, `<f2`, `>f4`, `>f8`, `>f2` (converted to Float, float64
    /// rounded to nearest); C order, or Fortran order transposed into C order (the
    /// tensor has the file's shape and the same element at every index).
    ///
    /// - Parameter allowingOverflow: read a float64 beyond Float's range as ±infinity
    ///   instead of throwing.
    /// - Throws: `NormKitError.invalidFile(format:offset:reason:)` for a malformed
    ///   file (with the byte offset), `NormKitError.unsupported(format:reason:)` for
    ///   another dtype, a 0-d array (shape `()`), which a Tensor (rank >= 1) cannot hold,
    ///   or a finite float64 that would become infinite (unless `allowingOverflow`).
    public init(npyData data: Data, allowingOverflow: Bool = false) throws(NormKitError) {
        let result = data.withUnsafeBytes { raw -> Result<Tensor, NormKitError> in
            do throws(NormKitError) {
                return .success(try Tensor(parsingNPY: raw, allowingOverflow: allowingOverflow))
            } catch { return .failure(error) }
        }
        self = try result.get()
    }

    private init(parsingNPY file: UnsafeRawBufferPointer, allowingOverflow: Bool) throws(NormKitError) {
        let header = try NPYHeader(parsing: file)
        guard let (format, bigEndian) = header.storage else {
            throw .unsupported(format: NPYHeader.format, reason: "dtype '\(header.dtype)' is not supported; NormKit reads \(NPYHeader.supportedDTypes.joined(separator: ", "))")
        }
        guard !header.shape.isEmpty else {
            throw .unsupported(format: NPYHeader.format, reason: "a 0-d array (shape ()) has no rank >= 1 Tensor; save it with np.atleast_1d")
        }
        // Validated by the header parser: the product fits and the data is exactly this long.
        let count = Shape.product(header.shape)!
        let source = UnsafeRawBufferPointer(rebasing: file[header.dataOffset...])
        var overflow: Int?
        if !header.fortranOrder || header.shape.count == 1 {
            self.init(uncheckedShape: header.shape, count: count) { out in
                overflow = StoredFloat.decode(format, bigEndian: bigEndian, from: source, into: out)
            }
        } else {
            let fortran = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                overflow = StoredFloat.decode(format, bigEndian: bigEndian, from: source, into: buffer)
                initialized = count
            }
            self.init(uncheckedShape: header.shape, count: count) { out in
                fortran.withUnsafeBufferPointer { NPYOrder.fortranToC($0, shape: header.shape, into: out) }
            }
        }
        if let overflow, !allowingOverflow {
            throw StoredFloat.overflowError(format: NPYHeader.format, what: "the array (in file order)", index: overflow)
        }
    }

}

/// Element order in .npy files: the float reader and the float16 reader
/// (NPY+Half.swift) transpose Fortran-order arrays the same way.
enum NPYOrder {
    /// Copies a column-major (first index fastest) array into row-major order.
    /// Element (i0, ..., ik) sits at sum(i_j * f_j) in the source, f_0 = 1, f_j = f_{j-1} * d_{j-1}.
    static func fortranToC<Element>(
        _ src: UnsafeBufferPointer<Element>, shape: [Int], into dst: UnsafeMutableBufferPointer<Element>
    ) {
        guard dst.count > 0 else { return }
        // Axes of length 1 move no element: dropped, every remaining axis has length >= 2,
        // so the odometer below carries O(1) times per step on average and the copy is
        // O(elements) whatever the rank.
        var dims: [Int] = [], fstride: [Int] = []
        var f = 1
        for d in shape {
            if d != 1 { dims.append(d); fstride.append(f) }
            f *= d
        }
        guard !dims.isEmpty else { dst[0] = src[0]; return }
        let rank = dims.count
        var index = [Int](repeating: 0, count: rank - 1)  // over all axes but the last
        let last = dims[rank - 1], lastStride = fstride[rank - 1]
        var base = 0, out = 0
        while out < dst.count {
            for j in 0..<last { dst[out + j] = src[base + j * lastStride] }
            out += last
            // Odometer over the leading axes, the last of them fastest.
            var axis = rank - 2
            while axis >= 0 {
                index[axis] += 1
                base += fstride[axis]
                if index[axis] < dims[axis] { break }
                base -= fstride[axis] * dims[axis]
                index[axis] = 0
                axis -= 1
            }
        }
    }
}

extension Tensor {
    /// The tensor as a NumPy `.npy` file: version 1.0 (2.0 only if the header needs
    /// more than 65535 bytes), dtype `<f4`, C order, byte-identical to `np.save`.
    ///
    /// - Throws: `NormKitError.unsupported(format:reason:)` for a tensor of more than
    ///   ``NPYHeader/maxRank`` dimensions, which NumPy and ``init(npyData:allowingOverflow:)``
    ///   do not read: the writer never makes a file its reader refuses.
    public func npyData() throws(NormKitError) -> Data {
        guard rank <= NPYHeader.maxRank else {
            throw .unsupported(format: NPYHeader.format,
                               reason: "a tensor of rank \(rank); a .npy file holds at most \(NPYHeader.maxRank) dimensions (NumPy's limit)")
        }
        let header = NPYHeader.encodeHeader(shape: shape)
        var out = Data(count: header.count + scalarCount * 4)
        out.withUnsafeMutableBytes { raw in
            header.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: raw[0..<$0.count]).copyMemory(from: $0) }
            withUnsafeBufferPointer { scalars in
                StoredFloat.encodeSingle(scalars, bigEndian: false,
                                         into: UnsafeMutableRawBufferPointer(rebasing: raw[header.count...]))
            }
        }
        return out
    }

    /// Writes the tensor to `url` as a `.npy` file (see ``npyData()``), atomically.
    ///
    /// - Throws: what ``npyData()`` throws, or `NormKitError.io(path:reason:)`.
    public func writeNPY(to url: URL) throws(NormKitError) {
        try FileAccess.write(npyData(), to: url)
    }
}
