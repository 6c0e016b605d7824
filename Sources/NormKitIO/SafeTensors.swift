// Hugging Face safetensors: an 8-byte little-endian header length N, N bytes of JSON,
// then the data area. Every rule of docs/formats.md is checked when the file is
// opened, so reading a tensor later cannot fail on layout, only on its dtype or rank.
import NormKit
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A safetensors file (Hugging Face's checkpoint format), validated and ready to read
/// tensors from by name.
///
/// ```swift
/// let file = try SafeTensors(contentsOf: URL(fileURLWithPath: "model.safetensors"))
/// print(file.names)                        // sorted
/// let w = try file.tensor(named: "h.0.ln_1.weight")   // F32, F16, BF16 or F64 -> Float
/// let norm = try LayerNorm(loading: "h.0.ln_1", from: file)
/// ```
///
/// Opening a file validates its whole header (see docs/formats.md for the rules) and
/// throws `NormKitError.invalidFile(format:offset:reason:)` naming the tensor, the
/// problem and the byte offset. The tensor data is not read until ``tensor(named:allowingOverflow:)``.
public struct SafeTensors: Sendable {
    /// The element types the safetensors format defines. All of them are accepted in a
    /// file; ``SafeTensors/tensor(named:allowingOverflow:)`` converts the floating-point ones
    /// ``f32``, ``f16``, ``bf16`` and ``f64`` to `Float`.
    public enum DType: String, Sendable, CaseIterable {
        /// Boolean, one byte.
        case bool = "BOOL"
        /// Unsigned 8-bit integer.
        case u8 = "U8"
        /// Signed 8-bit integer.
        case i8 = "I8"
        /// 8-bit float, 5 exponent and 2 mantissa bits.
        case f8e5m2 = "F8_E5M2"
        /// 8-bit float, 4 exponent and 3 mantissa bits.
        case f8e4m3 = "F8_E4M3"
        /// 8-bit exponent-only scale (MX formats).
        case f8e8m0 = "F8_E8M0"
        /// Signed 16-bit integer.
        case i16 = "I16"
        /// Unsigned 16-bit integer.
        case u16 = "U16"
        /// IEEE 754 half precision.
        case f16 = "F16"
        /// bfloat16: the upper half of a float32.
        case bf16 = "BF16"
        /// Signed 32-bit integer.
        case i32 = "I32"
        /// Unsigned 32-bit integer.
        case u32 = "U32"
        /// IEEE 754 single precision.
        case f32 = "F32"
        /// IEEE 754 double precision.
        case f64 = "F64"
        /// Signed 64-bit integer.
        case i64 = "I64"
        /// Unsigned 64-bit integer.
        case u64 = "U64"
        /// Complex of two float32.
        case c64 = "C64"
        /// 4-bit float (E2M1), two per byte.
        case f4 = "F4"
        /// 6-bit float, 2 exponent and 3 mantissa bits.
        case f6e2m3 = "F6_E2M3"
        /// 6-bit float, 3 exponent and 2 mantissa bits.
        case f6e3m2 = "F6_E3M2"

        /// Bits per element.
        public var bitWidth: Int {
            switch self {
            case .f4: return 4
            case .f6e2m3, .f6e3m2: return 6
            case .bool, .u8, .i8, .f8e5m2, .f8e4m3, .f8e8m0: return 8
            case .i16, .u16, .f16, .bf16: return 16
            case .i32, .u32, .f32: return 32
            case .f64, .i64, .u64, .c64: return 64
            }
        }

        /// The storage format ``SafeTensors/tensor(named:allowingOverflow:)`` decodes, or nil when NormKit
        /// does not convert this dtype to `Float`.
        var storedFloat: StoredFloat? {
            switch self {
            case .f32: return .single
            case .f16: return .half
            case .bf16: return .bfloat16
            case .f64: return .double
            default: return nil
            }
        }
    }

    /// One tensor's entry in the header.
    public struct TensorInfo: Sendable, Equatable {
        /// The tensor's name, e.g. `h.0.ln_1.weight`.
        public let name: String
        /// The element type.
        public let dtype: DType
        /// The dimensions, outermost first; `[]` is a scalar.
        public let shape: [Int]
        /// The tensor's bytes, relative to the start of the data area (the header's `data_offsets`).
        public let dataOffsets: Range<Int>
    }

    /// The largest header accepted, as in the reference implementation: 100 MB.
    public static let maxHeaderLength = 100_000_000

    /// The tensor names, sorted.
    public let names: [String]
    /// The header's `__metadata__` (string to string), empty when there is none.
    public let metadata: [String: String]
    /// The file size in bytes.
    public var byteCount: Int { storage.count }

    let infos: [TensorName: TensorInfo]
    let storage: Data
    /// The file offset of the data area: 8 + the header length.
    let dataStart: Int

    /// Opens and validates a safetensors file, memory-mapping it: the tensors' bytes
    /// are read only when ``tensor(named:allowingOverflow:)`` asks for them.
    ///
    /// - Throws: `NormKitError.io(path:reason:)` when the file cannot be read, and
    ///   `NormKitError.invalidFile(format:offset:reason:)` for any rule the header breaks.
    public init(contentsOf url: URL) throws(NormKitError) {
        try self.init(data: FileAccess.read(url, framing: .safetensors))
    }

    /// Validates a safetensors file held in memory.
    ///
    /// - Throws: `NormKitError.invalidFile(format:offset:reason:)` naming the rule
    ///   broken, the tensor and the byte offset.
    public init(data: Data) throws(NormKitError) {
        // Data.withUnsafeBytes only rethrows untyped errors: carry ours out in a Result.
        let result = data.withUnsafeBytes { raw -> Result<ParsedHeader, NormKitError> in
            do throws(NormKitError) { return .success(try Self.parseHeader(raw)) } catch { return .failure(error) }
        }
        let parsed = try result.get()
        storage = data
        dataStart = parsed.dataStart
        infos = parsed.infos
        metadata = parsed.metadata
        // Sorted as Strings; names that are equal as Strings (the same text in two
        // Unicode normal forms) are distinct tensors and follow in byte order.
        names = parsed.infos.values.map(\.name).sorted {
            $0 == $1 ? $0.utf8.lexicographicallyPrecedes($1.utf8) : $0 < $1
        }
    }

    /// The header entry of `name`, or nil when the file has no such tensor.
    public func info(named name: String) -> TensorInfo? { infos[TensorName(name)] }

    /// Whether the file holds a tensor called `name`.
    public func contains(_ name: String) -> Bool { infos[TensorName(name)] != nil }

    /// Every tensor's header entry, sorted by name.
    public var tensorInfos: [TensorInfo] { names.compactMap { infos[TensorName($0)] } }

    /// The tensor `name`, converted to `Float` (F32 copied; F16 and BF16 exactly
    /// widened; F64 rounded to nearest).
    ///
    /// - Parameters:
    ///   - name: the tensor's name in the file.
    ///   - allowingOverflow: read an F64 value beyond Float's range as ±infinity instead
    ///     of throwing.
    /// - Throws: `NormKitError.missingTensor(name:available:)` listing the file's
    ///   tensors, or `NormKitError.unsupported(format:reason:)` for a dtype other than
    ///   F32/F16/BF16/F64, a scalar (shape `[]`), which a `Tensor` (rank >= 1) cannot hold,
    ///   or a finite F64 value that would become infinite (unless `allowingOverflow`).
    public func tensor(named name: String, allowingOverflow: Bool = false) throws(NormKitError) -> Tensor {
        guard let info = infos[TensorName(name)] else { throw .missingTensor(name: name, available: names) }
        let format = try Self.readable(info)
        // Validated at open: the product fits, and the byte range lies in the data area.
        let count = info.dataOffsets.count / format.byteCount
        let start = dataStart + info.dataOffsets.lowerBound
        var overflow: Int?
        let tensor = storage.withUnsafeBytes { raw in
            Tensor(uncheckedShape: info.shape, count: count) { out in
                let source = UnsafeRawBufferPointer(rebasing: raw[start..<(start + info.dataOffsets.count)])
                overflow = StoredFloat.decode(format, bigEndian: false, from: source, into: out)
            }
        }
        if let overflow, !allowingOverflow {
            throw StoredFloat.overflowError(format: "safetensors", what: "tensor '\(name)'", index: overflow)
        }
        return tensor
    }

    /// The storage format of a tensor ``tensor(named:allowingOverflow:)`` can read, or the
    /// error it throws without reading any data: a dtype it does not convert, or a scalar.
    static func readable(_ info: TensorInfo) throws(NormKitError) -> StoredFloat {
        guard let format = info.dtype.storedFloat else {
            throw .unsupported(format: "safetensors",
                               reason: "tensor '\(info.name)' has dtype \(info.dtype.rawValue); NormKit reads F32, F16, BF16 and F64")
        }
        guard !info.shape.isEmpty else {
            throw .unsupported(format: "safetensors",
                               reason: "tensor '\(info.name)' is a scalar (shape []); a Tensor needs rank >= 1")
        }
        return format
    }
}

/// A tensor name as a dictionary key: compared and hashed by its UTF-8 bytes, as the
/// reference reader does. (A `String` key compares by canonical equivalence, which made
/// `café` as one scalar and as e + combining accent one name.)
struct TensorName: Hashable, Sendable {
    let bytes: [UInt8]
    init(_ name: String) { bytes = Array(name.utf8) }
}

// MARK: - Validation

extension SafeTensors {
    private static let format = "safetensors"

    private struct ParsedHeader {
        var dataStart: Int
        var infos: [TensorName: TensorInfo]
        var metadata: [String: String]
    }

    private static func fail(_ offset: Int?, _ reason: String) -> NormKitError {
        .invalidFile(format: format, offset: offset, reason: reason)
    }

    /// Checks every rule of docs/formats.md ("safetensors: validation") in order.
    private static func parseHeader(_ file: UnsafeRawBufferPointer) throws(NormKitError) -> ParsedHeader {
        // 1. The 8-byte little-endian header length, and the header within the file.
        guard file.count >= 8 else {
            throw fail(0, "the file is \(file.count) bytes, too short for the 8-byte header length")
        }
        // An .npy file read as safetensors would report a ~379 TB header length.
        if file.starts(with: [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]) {
            throw fail(0, "this looks like an .npy file (it starts with \\x93NUMPY), not safetensors; read it with Tensor(npyContentsOf:)")
        }
        let declared = UInt64(littleEndian: file.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        guard declared <= UInt64(maxHeaderLength) else {
            throw fail(0, "header length \(declared) exceeds the \(maxHeaderLength)-byte limit")
        }
        let headerLength = Int(declared)
        guard headerLength <= file.count - 8 else {
            throw fail(0, "header length \(headerLength) runs past the end of the file (\(file.count - 8) bytes follow the length field)")
        }
        let header = UnsafeRawBufferPointer(rebasing: file[8..<(8 + headerLength)])
        let dataStart = 8 + headerLength
        let dataSize = file.count - dataStart

        // 2. UTF-8 JSON, and an object at the top.
        if let bad = UTF8Validation.firstInvalidIndex(header) {
            throw fail(8 + bad, "the header is not valid UTF-8")
        }
        let root = try JSONParser.parse(header, format: format, baseOffset: 8)
        guard case let .object(members, _) = root else {
            throw fail(root.offset, "the header must be a JSON object, got \(root.kind)")
        }

        // 3. Each entry: __metadata__ (strings), or a tensor with a known dtype, a
        //    non-negative shape whose byte size fits in Int, and offsets matching it.
        var infos: [TensorName: TensorInfo] = [:]
        var metadata: [String: String] = [:]
        for member in members {
            if member.key == "__metadata__" {
                guard case let .object(entries, _) = member.value else {
                    throw fail(member.value.offset, "__metadata__ must be an object of strings, got \(member.value.kind)")
                }
                for entry in entries {
                    guard case let .string(value, _) = entry.value else {
                        throw fail(entry.value.offset, "__metadata__ value '\(entry.key)' must be a string, got \(entry.value.kind)")
                    }
                    // The JSON keys differ byte for byte (checked above), but a String key
                    // compares by canonical equivalence: two spellings of one text (NFC and
                    // NFD "café") would merge into one entry, losing a value without a word.
                    if let earlier = metadata.index(forKey: entry.key) {
                        let first = metadata[earlier].key
                        throw fail(entry.keyOffset, "__metadata__ keys '\(first)' (\(first.unicodeScalars.count) Unicode scalars) and "
                            + "'\(entry.key)' (\(entry.key.unicodeScalars.count)) are one text in two normal forms; "
                            + "the metadata dictionary cannot keep both")
                    }
                    metadata[entry.key] = value
                }
                continue
            }
            let info = try tensorInfo(member, dataSize: dataSize)
            infos[TensorName(member.key)] = info
        }

        // 4. The tensors tile the data area: sorted by offset, each starts where the
        //    previous ended (no overlap, no gap), and the last ends at the end of the file.
        let ordered = infos.values.sorted {
            ($0.dataOffsets.lowerBound, $0.dataOffsets.upperBound, $0.name)
                < ($1.dataOffsets.lowerBound, $1.dataOffsets.upperBound, $1.name)
        }
        var covered = 0
        var previous: TensorInfo?
        for info in ordered {
            let r = info.dataOffsets
            if r.lowerBound < covered, let previous {
                throw fail(dataStart + r.lowerBound,
                           "tensor '\(info.name)' (data bytes \(r.lowerBound)..<\(r.upperBound)) overlaps tensor '\(previous.name)' (data bytes \(previous.dataOffsets.lowerBound)..<\(previous.dataOffsets.upperBound))")
            }
            if r.lowerBound > covered {
                throw fail(dataStart + covered,
                           "data bytes \(covered)..<\(r.lowerBound) belong to no tensor (before tensor '\(info.name)'); a safetensors data area has no gaps")
            }
            covered = r.upperBound
            previous = info
        }
        if covered != dataSize {
            throw fail(dataStart + covered,
                       "the last \(dataSize - covered) bytes of the data area (data bytes \(covered)..<\(dataSize)) belong to no tensor")
        }
        return ParsedHeader(dataStart: dataStart, infos: infos, metadata: metadata)
    }

    private static func tensorInfo(_ member: JSONMember, dataSize: Int) throws(NormKitError) -> TensorInfo {
        let name = member.key
        guard case let .object(fields, entryOffset) = member.value else {
            throw fail(member.value.offset, "tensor '\(name)' must be an object with dtype, shape and data_offsets, got \(member.value.kind)")
        }
        var dtypeValue: JSONValue?, shapeValue: JSONValue?, offsetsValue: JSONValue?
        for field in fields {
            switch field.key {
            case "dtype": dtypeValue = field.value
            case "shape": shapeValue = field.value
            case "data_offsets": offsetsValue = field.value
            default: continue  // unknown fields are ignored, as by the reference reader
            }
        }
        guard let dtypeValue else { throw fail(entryOffset, "tensor '\(name)' has no \"dtype\"") }
        guard let shapeValue else { throw fail(entryOffset, "tensor '\(name)' has no \"shape\"") }
        guard let offsetsValue else { throw fail(entryOffset, "tensor '\(name)' has no \"data_offsets\"") }

        guard case let .string(dtypeName, dtypeOffset) = dtypeValue else {
            throw fail(dtypeValue.offset, "tensor '\(name)': dtype must be a string, got \(dtypeValue.kind)")
        }
        guard let dtype = DType(rawValue: dtypeName) else {
            let known = DType.allCases.map(\.rawValue).joined(separator: ", ")
            throw fail(dtypeOffset, "tensor '\(name)': unknown dtype '\(dtypeName)' (known: \(known))")
        }

        guard case let .array(dims, shapeOffset) = shapeValue else {
            throw fail(shapeValue.offset, "tensor '\(name)': shape must be an array, got \(shapeValue.kind)")
        }
        guard dims.count <= NPYHeader.maxRank else {
            throw fail(shapeOffset, "tensor '\(name)': shape has \(dims.count) dimensions; at most \(NPYHeader.maxRank) are allowed (NumPy's limit)")
        }
        var shape: [Int] = []
        shape.reserveCapacity(dims.count)
        for (i, d) in dims.enumerated() {
            shape.append(try nonNegativeInteger(d, "tensor '\(name)': shape[\(i)]"))
        }
        guard let elements = Shape.product(shape) else {
            throw fail(shapeOffset, "tensor '\(name)': the element count of shape \(shape) overflows")
        }
        let (bits, bitOverflow) = elements.multipliedReportingOverflow(by: dtype.bitWidth)
        if bitOverflow { throw fail(shapeOffset, "tensor '\(name)': the byte size of shape \(shape) of \(dtypeName) overflows") }
        guard bits % 8 == 0 else {
            throw fail(shapeOffset, "tensor '\(name)': shape \(shape) of \(dtypeName) is \(bits) bits, not a whole number of bytes")
        }
        let byteCount = bits / 8

        guard case let .array(offsets, offsetsOffset) = offsetsValue, offsets.count == 2 else {
            throw fail(offsetsValue.offset, "tensor '\(name)': data_offsets must be an array [begin, end]")
        }
        let begin = try nonNegativeInteger(offsets[0], "tensor '\(name)': data_offsets begin")
        let end = try nonNegativeInteger(offsets[1], "tensor '\(name)': data_offsets end")
        guard begin <= end else {
            throw fail(offsetsOffset, "tensor '\(name)': data_offsets [\(begin), \(end)] end before they begin")
        }
        guard end <= dataSize else {
            throw fail(offsetsOffset, "tensor '\(name)': data_offsets [\(begin), \(end)] end past the data area (\(dataSize) bytes)")
        }
        guard end - begin == byteCount else {
            throw fail(offsetsOffset, "tensor '\(name)': data_offsets [\(begin), \(end)] hold \(end - begin) bytes, but shape \(shape) of \(dtypeName) needs \(byteCount)")
        }
        return TensorInfo(name: name, dtype: dtype, shape: shape, dataOffsets: begin..<end)
    }

    /// A JSON integer >= 0 that fits in Int, written without sign, fraction or exponent.
    private static func nonNegativeInteger(_ value: JSONValue, _ what: String) throws(NormKitError) -> Int {
        guard case let .number(text, offset) = value else {
            throw fail(value.offset, "\(what) must be a non-negative integer, got \(value.kind)")
        }
        var n = 0
        for c in text.utf8 {
            guard c >= 0x30 && c <= 0x39 else {
                throw fail(offset, "\(what) must be a non-negative integer, got \(text)")
            }
            let (m, o1) = n.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(Int(c - 0x30))
            if o1 || o2 { throw fail(offset, "\(what) is too large: \(text)") }
            n = s
        }
        return n
    }
}

// MARK: - Writing

extension SafeTensors {
    /// The bytes of a safetensors file holding `tensors` as F32, in the reference
    /// writer's layout: compact JSON header with `__metadata__` first (when not empty),
    /// tensors sorted by name, header padded with spaces to a multiple of 8 bytes so
    /// the data area starts 8-byte aligned.
    ///
    /// - Throws: `NormKitError.invalidArgument(name:expected:actual:)` for a tensor
    ///   named `__metadata__` (the format reserves that key), for a tensor of more than
    ///   ``NPYHeader/maxRank`` dimensions, or for a header longer than ``maxHeaderLength``:
    ///   the writer never makes a file its reader refuses.
    public static func encode(_ tensors: [String: Tensor], metadata: [String: String] = [:]) throws(NormKitError) -> Data {
        if tensors["__metadata__"] != nil {
            throw .invalidArgument(name: "tensor name", expected: "not '__metadata__' (reserved by the format)",
                                   actual: "__metadata__")
        }
        for (name, t) in tensors where t.rank > NPYHeader.maxRank {
            throw .invalidArgument(name: "tensor '\(name)'", expected: "at most \(NPYHeader.maxRank) dimensions (what readers accept)",
                                   actual: "rank \(t.rank)")
        }
        let sorted = tensors.sorted { $0.key < $1.key }
        var header = "{"
        var first = true
        if !metadata.isEmpty {
            header += "\"__metadata__\":{"
            header += metadata.sorted { $0.key < $1.key }
                .map { "\(JSONText.quoted($0.key)):\(JSONText.quoted($0.value))" }
                .joined(separator: ",")
            header += "}"
            first = false
        }
        var offset = 0
        for (name, t) in sorted {
            let bytes = t.scalarCount * 4
            if !first { header += "," }
            first = false
            header += JSONText.quoted(name)
            header += ":{\"dtype\":\"F32\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],"
            header += "\"data_offsets\":[\(offset),\(offset + bytes)]}"
            offset += bytes
        }
        header += "}"
        var headerBytes = Array(header.utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }
        guard headerBytes.count <= maxHeaderLength else {
            throw .invalidArgument(name: "safetensors header", expected: "at most \(maxHeaderLength) bytes (what readers accept)",
                                   actual: "\(headerBytes.count) bytes for \(tensors.count) tensors and \(metadata.count) metadata entries")
        }

        var out = Data(count: 8 + headerBytes.count + offset)
        out.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: UInt64(headerBytes.count).littleEndian, toByteOffset: 0, as: UInt64.self)
            headerBytes.withUnsafeBytes { h in
                UnsafeMutableRawBufferPointer(rebasing: raw[8..<(8 + h.count)]).copyMemory(from: h)
            }
            var position = 8 + headerBytes.count
            for (_, t) in sorted {
                t.withUnsafeBufferPointer { scalars in
                    StoredFloat.encodeSingle(scalars, bigEndian: false,
                                             into: UnsafeMutableRawBufferPointer(rebasing: raw[position...]))
                }
                position += t.scalarCount * 4
            }
        }
        return out
    }

    /// Writes `tensors` as an F32 safetensors file at `url` (atomically; see ``encode(_:metadata:)``).
    ///
    /// - Throws: what ``encode(_:metadata:)`` throws, or `NormKitError.io(path:reason:)`.
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = [:], to url: URL) throws(NormKitError) {
        try FileAccess.write(encode(tensors, metadata: metadata), to: url)
    }
}
