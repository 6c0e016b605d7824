// NumPy's .npy format: "\x93NUMPY", a version (1.0, 2.0 or 3.0), a little-endian header
// length (2 bytes in 1.0, 4 in 2.0 and 3.0), a Python dict literal
// `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }` padded with spaces and a
// newline, then the raw elements. See docs/formats.md for the rules checked.
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
    /// so this admits ranks in the hundreds of thousands while bounding the parse.
    public static let maxHeaderLength = 1 << 20

    /// The dtypes NormKit reads: little- and big-endian float16, float32 and float64.
    public static let supportedDTypes = ["<f4", "<f8", "<f2", ">f4", ">f8", ">f2"]

    /// Whether two headers have the same version, dtype, order, shape and data offset.
    public static func == (a: NPYHeader, b: NPYHeader) -> Bool {
        a.version == b.version && a.dtype == b.dtype && a.fortranOrder == b.fortranOrder
            && a.shape == b.shape && a.dataOffset == b.dataOffset
    }

    /// Parses and validates the header of a `.npy` file (the data's length is checked too).
    ///
    /// - Throws: ``NormKitError/invalidFile(format:offset:reason:)`` for a malformed file.
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
        if major == 3, let bad = JSONText.firstInvalidUTF8(header) {
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
        var count = 1
        for d in shape {
            let (p, o) = count.multipliedReportingOverflow(by: d)
            if o { throw Self.fail(shapeOffset, "the element count of shape \(shape) overflows") }
            count = p
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

    /// The header bytes NumPy's `np.save` writes for a C-order `<f4` array of `shape`
    /// (version 1.0, or 2.0 if the header outgrows 1.0's 16-bit length), so a tensor
    /// saved by NormKit and one saved by NumPy are byte-identical.
    static func encodeHeader(shape: [Int]) -> [UInt8] {
        let shapeText = shape.count == 1
            ? "(\(shape[0]),)"
            : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var text = "{'descr': '<f4', 'fortran_order': False, 'shape': \(shapeText), }"
        // NumPy's spare room for growing the first axis in place (GROWTH_AXIS_MAX_DIGITS = 21).
        if let first = shape.first { text += String(repeating: " ", count: max(0, 21 - String(first).count)) }
        let body = Array(text.utf8)
        let hlen = body.count + 1  // + the final newline
        // Pad so that magic + version + length + header is a multiple of 64 (ARRAY_ALIGN);
        // NumPy pads a full 64 when already aligned, and so does this.
        var major: UInt8 = 1
        var padding = 64 - ((10 + hlen) % 64)
        if hlen + padding > Int(UInt16.max) {
            major = 2
            padding = 64 - ((12 + hlen) % 64)
        }
        var out = magic + [major, 0]
        let fieldLength = hlen + padding
        if major == 1 {
            out += [UInt8(fieldLength & 0xFF), UInt8(fieldLength >> 8)]
        } else {
            out += (0..<4).map { UInt8((fieldLength >> (8 * $0)) & 0xFF) }
        }
        out += body
        out += [UInt8](repeating: 0x20, count: padding)
        out.append(0x0A)
        return out
    }
}

extension Tensor {
    /// Reads a NumPy `.npy` file (memory-mapped while it is converted).
    ///
    /// See ``init(npyData:)`` for what is read and refused.
    ///
    /// - Throws: ``NormKitError/io(path:reason:)`` when the file cannot be read, and
    ///   what ``init(npyData:)`` throws.
    public init(npyContentsOf url: URL) throws(NormKitError) {
        try self.init(npyData: FileAccess.read(url))
    }

    /// Reads a NumPy `.npy` file held in memory: format versions 1.0, 2.0 and 3.0;
    /// dtypes `<f4`, `<f8`, `<f2`, `>f4`, `>f8`, `>f2` (converted to Float, float64
    /// rounded to nearest); C order, or Fortran order transposed into C order (the
    /// tensor has the file's shape and the same element at every index).
    ///
    /// - Throws: ``NormKitError/invalidFile(format:offset:reason:)`` for a malformed
    ///   file (with the byte offset), ``NormKitError/unsupported(format:reason:)`` for
    ///   another dtype or a 0-d array (shape `()`), which a Tensor (rank >= 1) cannot hold.
    public init(npyData data: Data) throws(NormKitError) {
        let result = data.withUnsafeBytes { raw -> Result<Tensor, NormKitError> in
            do throws(NormKitError) { return .success(try Tensor(parsingNPY: raw)) } catch { return .failure(error) }
        }
        self = try result.get()
    }

    private init(parsingNPY file: UnsafeRawBufferPointer) throws(NormKitError) {
        let header = try NPYHeader(parsing: file)
        guard let (format, bigEndian) = header.storage else {
            throw .unsupported(format: NPYHeader.format, reason: "dtype '\(header.dtype)' is not supported; NormKit reads \(NPYHeader.supportedDTypes.joined(separator: ", "))")
        }
        guard !header.shape.isEmpty else {
            throw .unsupported(format: NPYHeader.format, reason: "a 0-d array (shape ()) has no rank >= 1 Tensor; save it with np.atleast_1d")
        }
        // Validated by the header parser: the product fits and the data is exactly this long.
        let count = header.shape.reduce(1, *)
        let source = UnsafeRawBufferPointer(rebasing: file[header.dataOffset...])
        if !header.fortranOrder || header.shape.count == 1 {
            self.init(uncheckedShape: header.shape, count: count) { out in
                StoredFloat.decode(format, bigEndian: bigEndian, from: source, into: out)
            }
            return
        }
        let fortran = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            StoredFloat.decode(format, bigEndian: bigEndian, from: source, into: buffer)
            initialized = count
        }
        self.init(uncheckedShape: header.shape, count: count) { out in
            fortran.withUnsafeBufferPointer { Self.fortranToC($0, shape: header.shape, into: out) }
        }
    }

    /// Copies a column-major (first index fastest) array into row-major order.
    /// Element (i0, ..., ik) sits at sum(i_j * f_j) in the source, f_0 = 1, f_j = f_{j-1} * d_{j-1}.
    private static func fortranToC(
        _ src: UnsafeBufferPointer<Float>, shape: [Int], into dst: UnsafeMutableBufferPointer<Float>
    ) {
        guard dst.count > 0 else { return }
        let rank = shape.count
        var fstride = [Int](repeating: 1, count: rank)
        for j in 1..<rank { fstride[j] = fstride[j - 1] * shape[j - 1] }
        var index = [Int](repeating: 0, count: rank - 1)  // over all axes but the last
        let last = shape[rank - 1], lastStride = fstride[rank - 1]
        var base = 0, out = 0
        while out < dst.count {
            for j in 0..<last { dst[out + j] = src[base + j * lastStride] }
            out += last
            // Odometer over the leading axes, the last of them fastest.
            var axis = rank - 2
            while axis >= 0 {
                index[axis] += 1
                base += fstride[axis]
                if index[axis] < shape[axis] { break }
                base -= fstride[axis] * shape[axis]
                index[axis] = 0
                axis -= 1
            }
        }
    }

    /// The tensor as a NumPy `.npy` file: version 1.0 (2.0 only if the header needs
    /// more than 65535 bytes), dtype `<f4`, C order, byte-identical to `np.save`.
    public func npyData() -> Data {
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
    /// - Throws: ``NormKitError/io(path:reason:)``.
    public func writeNPY(to url: URL) throws(NormKitError) {
        try FileAccess.write(npyData(), to: url)
    }
}

// MARK: - The header's Python literal

/// The subset of Python literals a .npy header can hold, with byte offsets.
/// (Not `indirect`: recursion goes through arrays, so leaves need no heap box.)
enum PythonLiteral {
    case dict([(key: String, keyOffset: Int, value: PythonLiteral)], offset: Int)
    case tuple([PythonLiteral], offset: Int)
    case list([PythonLiteral], offset: Int)
    case string(String, offset: Int)
    /// An integer; nil when it does not fit in Int.
    case int(Int?, offset: Int)
    case bool(Bool, offset: Int)
    case none(offset: Int)

    var offset: Int {
        switch self {
        case let .dict(_, o), let .tuple(_, o), let .list(_, o), let .string(_, o),
             let .int(_, o), let .bool(_, o), let .none(o):
            return o
        }
    }

    var kind: String {
        switch self {
        case .dict: return "a dict"
        case .tuple: return "a tuple"
        case .list: return "a list"
        case .string: return "a string"
        case .int: return "an int"
        case .bool: return "a bool"
        case .none: return "None"
        }
    }
}

/// A recursive-descent reader for Python's literal syntax as `repr` writes it (what
/// `ast.literal_eval` reads in NumPy): dicts, tuples (`(3,)`, `()`; `(3)` is just 3),
/// lists, quoted strings, ints (a Python 2 `L` suffix allowed), True, False, None.
struct PythonLiteralParser {
    static let maxDepth = 32

    private let bytes: UnsafeRawBufferPointer
    private let utf8: Bool
    private let base: Int
    private var pos = 0

    static func parse(_ bytes: UnsafeRawBufferPointer, utf8: Bool, baseOffset: Int) throws(NormKitError) -> PythonLiteral {
        var p = PythonLiteralParser(bytes: bytes, utf8: utf8, base: baseOffset)
        p.skipWhitespace()
        let value = try p.parseValue(depth: 0)
        p.skipWhitespace()
        if p.pos < bytes.count {
            throw p.error("unexpected \(p.describeByte()) after the header dict")
        }
        return value
    }

    private init(bytes: UnsafeRawBufferPointer, utf8: Bool, base: Int) {
        self.bytes = bytes
        self.utf8 = utf8
        self.base = base
    }

    private func error(_ reason: String, at position: Int? = nil) -> NormKitError {
        .invalidFile(format: NPYHeader.format, offset: base &+ (position ?? pos), reason: "header: " + reason)
    }

    private var peek: UInt8? { pos < bytes.count ? bytes[pos] : nil }

    private func describeByte() -> String {
        guard let b = peek else { return "end of header" }
        if b >= 0x20 && b < 0x7F { return "'\(Character(Unicode.Scalar(b)))'" }
        return "byte 0x" + String(b, radix: 16)
    }

    private mutating func skipWhitespace() {
        while let b = peek, b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D || b == 0x0C { pos += 1 }
    }

    private mutating func parseValue(depth: Int) throws(NormKitError) -> PythonLiteral {
        guard depth < Self.maxDepth else { throw error("nested deeper than \(Self.maxDepth) levels") }
        let start = pos
        guard let b = peek else { throw error("expected a value, got end of header") }
        switch b {
        case UInt8(ascii: "{"):
            return try parseDict(depth: depth)
        case UInt8(ascii: "("):
            pos += 1
            let (items, trailingComma) = try parseSequence(close: UInt8(ascii: ")"), depth: depth)
            // (x) is x in parentheses; (x,) and () are tuples.
            if items.count == 1 && !trailingComma { return items[0] }
            return .tuple(items, offset: base &+ start)
        case UInt8(ascii: "["):
            pos += 1
            return .list(try parseSequence(close: UInt8(ascii: "]"), depth: depth).items, offset: base &+ start)
        case UInt8(ascii: "'"), UInt8(ascii: "\""):
            return .string(try parseString(), offset: base &+ start)
        case UInt8(ascii: "-"), UInt8(ascii: "+"), 0x30...0x39:
            return .int(try parseInt(), offset: base &+ start)
        default:
            let word = identifier()
            switch word {
            case "True": return .bool(true, offset: base &+ start)
            case "False": return .bool(false, offset: base &+ start)
            case "None": return .none(offset: base &+ start)
            default:
                pos = start
                throw error("expected a Python literal, got \(word.isEmpty ? describeByte() : "'\(word)'")")
            }
        }
    }

    private mutating func identifier() -> String {
        let start = pos
        while let b = peek, (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x5F { pos += 1 }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<pos]), as: UTF8.self)
    }

    /// Items up to `close`, separated by commas, an optional trailing comma.
    private mutating func parseSequence(close: UInt8, depth: Int) throws(NormKitError) -> (items: [PythonLiteral], trailingComma: Bool) {
        var items: [PythonLiteral] = []
        var trailingComma = false
        while true {
            skipWhitespace()
            if peek == close { pos += 1; return (items, trailingComma) }
            items.append(try parseValue(depth: depth + 1))
            trailingComma = false
            skipWhitespace()
            if peek == UInt8(ascii: ",") { pos += 1; trailingComma = true; continue }
            guard peek == close else {
                throw error("expected ',' or '\(Character(Unicode.Scalar(close)))', got \(describeByte())")
            }
        }
    }

    private mutating func parseDict(depth: Int) throws(NormKitError) -> PythonLiteral {
        let start = pos
        pos += 1  // '{'
        var entries: [(key: String, keyOffset: Int, value: PythonLiteral)] = []
        while true {
            skipWhitespace()
            if peek == UInt8(ascii: "}") { pos += 1; return .dict(entries, offset: base &+ start) }
            let keyOffset = pos
            guard peek == UInt8(ascii: "'") || peek == UInt8(ascii: "\"") else {
                throw error("expected a string key, got \(describeByte())")
            }
            let key = try parseString()
            if entries.contains(where: { $0.key == key }) {
                throw error("duplicate key '\(key)'", at: keyOffset)
            }
            skipWhitespace()
            guard peek == UInt8(ascii: ":") else { throw error("expected ':' after key '\(key)', got \(describeByte())") }
            pos += 1
            skipWhitespace()
            let value = try parseValue(depth: depth + 1)
            entries.append((key, base &+ keyOffset, value))
            skipWhitespace()
            if peek == UInt8(ascii: ",") { pos += 1; continue }
            guard peek == UInt8(ascii: "}") else { throw error("expected ',' or '}' in dict, got \(describeByte())") }
        }
    }

    /// A quoted string with the simple backslash escapes; bytes are UTF-8 (version 3)
    /// or Latin-1 (versions 1 and 2).
    private mutating func parseString() throws(NormKitError) -> String {
        let start = pos
        let quote = bytes[pos]
        pos += 1
        var out: [UInt8] = []
        while true {
            guard let b = peek else { throw error("unterminated string", at: start) }
            pos += 1
            if b == quote { break }
            if b == 0x0A { throw error("newline inside a string", at: start) }
            if b == UInt8(ascii: "\\") {
                guard let e = peek else { throw error("unterminated string", at: start) }
                pos += 1
                switch e {
                case UInt8(ascii: "\\"), UInt8(ascii: "'"), UInt8(ascii: "\""): out.append(e)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "r"): out.append(0x0D)
                default: throw error("unsupported escape in a string", at: pos - 2)
                }
                continue
            }
            out.append(b)
        }
        if utf8 { return String(decoding: out, as: UTF8.self) }
        var s = ""
        for b in out { s.unicodeScalars.append(Unicode.Scalar(b)) }  // Latin-1: byte = code point
        return s
    }

    /// `[+-]?[0-9]+[lL]?`; nil when the value does not fit in Int.
    private mutating func parseInt() throws(NormKitError) -> Int? {
        let start = pos
        var negative = false
        if peek == UInt8(ascii: "-") || peek == UInt8(ascii: "+") {
            negative = peek == UInt8(ascii: "-")
            pos += 1
        }
        var value: Int? = 0
        var digits = 0
        while let b = peek, b >= 0x30 && b <= 0x39 {
            if let v = value {
                let (m, o1) = v.multipliedReportingOverflow(by: 10)
                let (s, o2) = m.addingReportingOverflow(Int(b - 0x30))
                value = (o1 || o2) ? nil : s
            }
            digits += 1
            pos += 1
        }
        guard digits > 0 else { throw error("expected digits", at: start) }
        if peek == UInt8(ascii: "L") || peek == UInt8(ascii: "l") { pos += 1 }
        if let b = peek, (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2E {
            throw error("expected an int, got a malformed number", at: start)
        }
        if negative, let v = value { return -v }
        return value
    }
}
