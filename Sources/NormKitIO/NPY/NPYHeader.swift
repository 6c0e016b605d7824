// NumPy's .npy format: "\x93NUMPY", a version (1.0, 2.0 or 3.0), a little-endian header
// length (2 bytes in 1.0, 4 in 2.0 and 3.0), a Python dict literal
// `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }` padded with spaces and a
// newline, then the raw elements. See docs/formats.md for the rules checked.
// This file: the header (parse, validate, encode). Tensor+NPY.swift reads and writes
// tensors; PythonLiteral.swift parses the header's dict literal.
import NormKit
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The header of a `.npy` file: what the array is, without its data.
///
/// ```swift
/// let header = try NPYHeader(npyData: bytes)   // e.g. dtype "<f4", shape [2, 3]
/// ```
public struct NPYHeader: Sendable, Equatable {
    /// The format version, `(1, 0)`, `(2, 0)` or `(3, 0)`.
    public let version: (major: Int, minor: Int)
    /// NumPy's dtype descriptor as written, e.g. `<f4`, `>f4`, `<f8`, `<f2`.
    public let dtype: String
    /// Whether the file stores the array in Fortran (column-major) order.
    public let fortranOrder: Bool
    /// The array's dimensions; `[]` for a 0-d array.
    public let shape: [Int]
    /// The file offset where the array data begins.
    public let dataOffset: Int

    /// The largest header accepted: 1 MiB. NumPy itself refuses more than 10 000 characters
    /// by default; a float array's header is under 100 bytes plus about 3 per dimension,
    /// so this bounds the parse (ranks are capped at ``maxRank`` separately).
    public static let maxHeaderLength = 1 << 20

    /// The most dimensions a shape may have: 64, NumPy's `NPY_MAXDIMS` (both readers
    /// refuse more, before anything is allocated per dimension).
    public static let maxRank = 64

    /// The dtypes NormKit reads: little- and big-endian float16, float32 and float64.
    public static let supportedDTypes = ["<f4", "<f8", "<f2", ">f4", ">f8", ">f2"]

    /// Whether two headers have the same version, dtype, order, shape and data offset.
    public static func == (a: NPYHeader, b: NPYHeader) -> Bool {
        a.version == b.version && a.dtype == b.dtype && a.fortranOrder == b.fortranOrder
            && a.shape == b.shape && a.dataOffset == b.dataOffset
    }

    /// Parses and validates the header of a `.npy` file (the data's length is checked too).
    ///
    /// - Throws: `NormKitError.invalidFile(format:offset:reason:)` for a malformed file.
    ///   A well-formed header with an unsupported dtype or a 0-d shape is returned, not refused.
    public init(npyData data: Data) throws(NormKitError) {
        let result = data.withUnsafeBytes { raw -> Result<NPYHeader, NormKitError> in
            do throws(NormKitError) { return .success(try NPYHeader(parsing: raw)) } catch { return .failure(error) }
        }
        self = try result.get()
    }

    private init(version: (Int, Int), dtype: String, fortranOrder: Bool, shape: [Int], dataOffset: Int) {
        self.version = version
        self.dtype = dtype
        self.fortranOrder = fortranOrder
        self.shape = shape
        self.dataOffset = dataOffset
    }

    static let format = "npy"
    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // \x93NUMPY

    private static func fail(_ offset: Int?, _ reason: String) -> NormKitError {
        .invalidFile(format: format, offset: offset, reason: reason)
    }

    /// The storage format and byte order of a supported dtype, or nil.
    var storage: (format: StoredFloat, bigEndian: Bool)? {
        switch dtype {
        case "<f4": return (.single, false)
        case ">f4": return (.single, true)
        case "<f8": return (.double, false)
        case ">f8": return (.double, true)
        case "<f2": return (.half, false)
        case ">f2": return (.half, true)
        default: return nil
        }
    }

    /// Item size in bytes of a float dtype string `[<>|=]f{2,4,8}`, or nil.
    private static func itemSize(_ dtype: String) -> Int? {
        switch dtype.dropFirst() {
        case "f2": return 2
        case "f4": return 4
        case "f8": return 8
        default: return nil
        }
    }

    init(parsing file: UnsafeRawBufferPointer) throws(NormKitError) {
        // 1. Magic and version.
        guard file.count >= 8 else {
            throw Self.fail(0, "the file is \(file.count) bytes, too short for the 8-byte magic and version")
        }
        for i in 0..<6 where file[i] != Self.magic[i] {
            throw Self.fail(i, "not a .npy file: it must start with \\x93NUMPY")
        }
        let major = Int(file[6]), minor = Int(file[7])
        guard (major == 1 || major == 2 || major == 3) && minor == 0 else {
            throw Self.fail(6, "unsupported .npy version \(major).\(minor) (NormKit reads 1.0, 2.0 and 3.0)")
        }

        // 2. Header length, and the header within the file.
        let lengthSize = major == 1 ? 2 : 4
        guard file.count >= 8 + lengthSize else {
            throw Self.fail(8, "the file ends inside the header length field")
        }
        let headerLength = major == 1
            ? Int(UInt16(littleEndian: file.loadUnaligned(fromByteOffset: 8, as: UInt16.self)))
            : Int(UInt32(littleEndian: file.loadUnaligned(fromByteOffset: 8, as: UInt32.self)))
        let headerStart = 8 + lengthSize
        guard headerLength <= Self.maxHeaderLength else {
            throw Self.fail(8, "header length \(headerLength) exceeds the \(Self.maxHeaderLength)-byte limit")
        }
        guard headerLength <= file.count - headerStart else {
            throw Self.fail(8, "header length \(headerLength) runs past the end of the file (\(file.count - headerStart) bytes follow)")
        }
        let header = UnsafeRawBufferPointer(rebasing: file[headerStart..<(headerStart + headerLength)])
        if major == 3, let bad = UTF8Validation.firstInvalidIndex(header) {
            throw Self.fail(headerStart + bad, "a version 3.0 header must be UTF-8")
        }

        // 3. A dict literal with exactly the keys descr, fortran_order and shape.
        let root = try PythonLiteralParser.parse(header, utf8: major == 3, baseOffset: headerStart)
        guard case let .dict(entries, _) = root else {
            throw Self.fail(root.offset, "the header must be a Python dict, got \(root.kind)")
        }
        var descr: PythonLiteral?, fortran: PythonLiteral?, shapeValue: PythonLiteral?
        for (key, keyOffset, value) in entries {
            switch key {
            case "descr": descr = value
            case "fortran_order": fortran = value
            case "shape": shapeValue = value
            default:
                throw Self.fail(keyOffset, "unexpected header key '\(key)' (a .npy header has exactly 'descr', 'fortran_order' and 'shape')")
            }
        }
        guard let descr else { throw Self.fail(headerStart, "the header has no 'descr'") }
        guard let fortran else { throw Self.fail(headerStart, "the header has no 'fortran_order'") }
        guard let shapeValue else { throw Self.fail(headerStart, "the header has no 'shape'") }

        // 4. Values: descr a string (structured dtypes are lists: unsupported), a bool,
        //    and a tuple of non-negative ints whose byte size fits in Int.
        let dtype: String
        switch descr {
        case let .string(s, _): dtype = s
        case .list:
            dtype = "structured"
        default:
            throw Self.fail(descr.offset, "'descr' must be a dtype string such as '<f4', got \(descr.kind)")
        }
        guard case let .bool(fortranOrder, _) = fortran else {
            throw Self.fail(fortran.offset, "'fortran_order' must be True or False, got \(fortran.kind)")
        }
        guard case let .tuple(dims, shapeOffset) = shapeValue else {
            throw Self.fail(shapeValue.offset, "'shape' must be a tuple of ints, got \(shapeValue.kind)")
        }
        guard dims.count <= Self.maxRank else {
            throw Self.fail(shapeOffset, "'shape' has \(dims.count) dimensions; at most \(Self.maxRank) are allowed (NumPy's limit)")
        }
        var shape: [Int] = []
        shape.reserveCapacity(dims.count)
        for (i, d) in dims.enumerated() {
            guard case let .int(v, _) = d else {
                throw Self.fail(d.offset, "'shape'[\(i)] must be an int, got \(d.kind)")
            }
            guard let v, v >= 0 else {
                throw Self.fail(d.offset, "'shape'[\(i)] must be a non-negative int that fits in 64 bits")
            }
            shape.append(v)
        }
        guard let count = Shape.product(shape) else {
            throw Self.fail(shapeOffset, "the element count of shape \(shape) overflows")
        }

        // 5. The data: exactly count x itemsize bytes after the header (only for the
        //    float dtypes, whose size is known; others are refused later as unsupported).
        let dataOffset = headerStart + headerLength
        if let size = Self.itemSize(dtype) {
            let (needed, o) = count.multipliedReportingOverflow(by: size)
            if o { throw Self.fail(shapeOffset, "the byte size of shape \(shape) of \(dtype) overflows") }
            let available = file.count - dataOffset
            if available < needed {
                throw Self.fail(dataOffset, "shape \(shape) of \(dtype) needs \(needed) bytes of data, the file has \(available)")
            }
            if available > needed {
                throw Self.fail(dataOffset + needed, "\(available - needed) bytes follow the \(needed) bytes of array data")
            }
        }
        self.init(version: (major, minor), dtype: dtype, fortranOrder: fortranOrder, shape: shape, dataOffset: dataOffset)
    }

    /// The header bytes NumPy's `np.save` writes for a C-order array of `shape` and dtype
    /// `descr` (`<f4`, or `<f2` for the half writer), so
    /// a tensor saved by NormKit and one saved by NumPy are byte-identical. Version 1.0:
    /// with at most ``maxRank`` dimensions (the writer's precondition) the header is under
    /// 2 KB, far from 1.0's 65535-byte limit.
    static func encodeHeader(shape: [Int], descr: String = "<f4") -> [UInt8] {
        precondition(shape.count <= maxRank, "encodeHeader: rank above maxRank")
        let shapeText = shape.count == 1
            ? "(\(shape[0]),)"
            : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var text = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }"
        // NumPy's spare room for growing the first axis in place (GROWTH_AXIS_MAX_DIGITS = 21).
        if let first = shape.first { text += String(repeating: " ", count: max(0, 21 - String(first).count)) }
        let body = Array(text.utf8)
        let hlen = body.count + 1  // + the final newline
        // Pad so that magic + version + length + header is a multiple of 64 (ARRAY_ALIGN);
        // NumPy pads a full 64 when already aligned, and so does this.
        let padding = 64 - ((10 + hlen) % 64)
        let fieldLength = hlen + padding
        var out = magic + [1, 0]
        out += [UInt8(fieldLength & 0xFF), UInt8(fieldLength >> 8)]
        out += body
        out += [UInt8](repeating: 0x20, count: padding)
        out.append(0x0A)
        return out
    }
}
