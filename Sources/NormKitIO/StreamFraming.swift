// How much of a stream (a pipe, a FIFO, a device) a format reader may read: the
// magic first, then the header, then exactly what the header declares (FileAccess
// adds one byte so trailing data is still reported). A regular file is mapped and
// needs none of this. The parsers (NPYHeader, SafeTensors) still check everything;
// framing only decides when to stop reading, and refuses a stream whose first bytes
// are not the format's at once, so `/dev/zero` costs a few bytes, not all memory.

import NormKit

enum FrameDecision: Equatable {
    /// The header is not complete: read up to this many bytes in all, then ask again.
    case need(Int)
    /// The stream's declared length in bytes (header and data).
    case total(Int)
}

package enum StreamFraming {
    /// A NumPy .npy file.
    case npy
    /// A safetensors file.
    case safetensors
    /// Either, told apart by the first byte (`\x93` starts an .npy file).
    case npyOrSafeTensors
    /// No format: to the end of the stream, each step admission-checked (/proc files).
    case whole

    /// Bytes read before the first decision: enough for either format's magic and length.
    var initialBytes: Int { 16 }

    /// What to do after reading `bytes` (`atEnd`: the stream ended before the last request).
    /// Throws when the first bytes cannot start this format; anything else wrong with the
    /// header ends the reading (`.total` of what is there), and the parser reports it.
    func decide(_ bytes: UnsafeRawBufferPointer, atEnd: Bool) throws(NormKitError) -> FrameDecision {
        switch self {
        case .npy: return try Self.npy(bytes)
        case .safetensors: return try Self.safetensors(bytes)
        case .npyOrSafeTensors:
            return bytes.first == NPYHeader.magic[0] ? try Self.npy(bytes) : try Self.safetensors(bytes)
        case .whole:
            let (next, overflow) = bytes.count.addingReportingOverflow(max(1 << 16, bytes.count))
            try MemoryBudget.admit(overflow ? nil : next, for: "a stream read to its end")
            return .need(next)
        }
    }

    private static func npy(_ bytes: UnsafeRawBufferPointer) throws(NormKitError) -> FrameDecision {
        let magic = NPYHeader.magic
        for i in 0..<min(bytes.count, magic.count) where bytes[i] != magic[i] {
            throw .invalidFile(format: NPYHeader.format, offset: i, reason: "not a .npy file: it must start with \\x93NUMPY")
        }
        guard bytes.count >= 8 else { return .need(8) }
        let major = Int(bytes[6])
        guard major >= 1 && major <= 3 else { return .total(bytes.count) }
        let lengthSize = major == 1 ? 2 : 4
        let headerStart = 8 + lengthSize
        guard bytes.count >= headerStart else { return .need(headerStart) }
        var headerLength = 0
        for i in (8..<headerStart).reversed() { headerLength = headerLength << 8 | Int(bytes[i]) }
        guard headerLength <= NPYHeader.maxHeaderLength else { return .total(bytes.count) }
        let dataOffset = headerStart + headerLength
        guard bytes.count >= dataOffset else { return .need(dataOffset) }

        // The header's dtype and shape say how many data bytes follow.
        let parsed: PythonLiteral
        do {
            parsed = try PythonLiteralParser.parse(UnsafeRawBufferPointer(rebasing: bytes[headerStart..<dataOffset]),
                                                   utf8: major == 3, baseOffset: headerStart)
        } catch {
            return .total(dataOffset)
        }
        guard case let .dict(entries, _) = parsed,
              case let .string(descr, _)? = entries.first(where: { $0.key == "descr" })?.value,
              case let .tuple(dims, _)? = entries.first(where: { $0.key == "shape" })?.value
        else { return .total(dataOffset) }
        let itemSize: Int
        switch descr.dropFirst() {
        case "f2": itemSize = 2
        case "f4": itemSize = 4
        case "f8": itemSize = 8
        default: return .total(dataOffset)  // another dtype: refused by the parser anyway
        }
        var total = itemSize
        for d in dims {
            guard case let .int(v?, _) = d, v >= 0 else { return .total(dataOffset) }
            let (p, overflow) = total.multipliedReportingOverflow(by: v)
            guard !overflow else { return .total(dataOffset) }
            total = p
        }
        let (end, overflow) = dataOffset.addingReportingOverflow(total)
        return overflow ? .total(dataOffset) : .total(end)
    }

    private static func safetensors(_ bytes: UnsafeRawBufferPointer) throws(NormKitError) -> FrameDecision {
        guard bytes.count >= 8 else { return .need(8) }
        if bytes.starts(with: NPYHeader.magic) { return .total(bytes.count) }  // the parser names it
        var declared: UInt64 = 0
        for i in (0..<8).reversed() { declared = declared << 8 | UInt64(bytes[i]) }
        guard declared <= UInt64(SafeTensors.maxHeaderLength), declared > 0 else { return .total(bytes.count) }
        let headerEnd = 8 + Int(declared)
        // The header is a JSON object: its first byte is `{` or JSON whitespace.
        if bytes.count > 8, !"{ \t\r\n".utf8.contains(bytes[8]) {
            throw .invalidFile(format: "safetensors", offset: 8,
                               reason: "not a safetensors file: the header after the 8-byte length must be a JSON object, starting with '{'")
        }
        guard bytes.count >= headerEnd else { return .need(headerEnd) }

        // The data area ends where the last tensor's data_offsets end.
        let root: JSONValue
        do {
            root = try JSONParser.parse(UnsafeRawBufferPointer(rebasing: bytes[8..<headerEnd]), format: "safetensors", baseOffset: 8)
        } catch {
            return .total(headerEnd)
        }
        guard case let .object(members, _) = root else { return .total(headerEnd) }
        var dataEnd = 0
        for member in members where member.key != "__metadata__" {
            guard case let .object(fields, _) = member.value,
                  case let .array(offsets, _)? = fields.first(where: { $0.key == "data_offsets" })?.value,
                  offsets.count == 2, case let .number(text, _) = offsets[1], let end = Int(text), end >= 0
            else { return .total(headerEnd) }
            dataEnd = max(dataEnd, end)
        }
        let (end, overflow) = headerEnd.addingReportingOverflow(dataEnd)
        return overflow ? .total(headerEnd) : .total(end)
    }
}
