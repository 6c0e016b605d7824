// A small, strict JSON (RFC 8259) reader for the safetensors header, and the string
// escaping its writer needs. Not Foundation's JSONSerialization: this one reports the
// byte offset of every fault, keeps numbers as their text (so a shape dimension is
// parsed as an exact integer, never through Double), rejects duplicate keys, limits
// nesting, and cannot trap on any input (each index is checked against the count).

/// A parsed JSON value with the byte offset (from the start of the parsed text) where it begins.
///
/// Not `indirect`: the recursion goes through arrays, so a leaf costs its 32-byte slot and
/// no heap box. ``JSONParser/maxValues`` bounds the tree.
enum JSONValue: Sendable {
    case object([JSONMember], offset: Int)
    case array([JSONValue], offset: Int)
    case string(String, offset: Int)
    /// A number's text exactly as written, e.g. `-1.5e3`.
    case number(String, offset: Int)
    case bool(Bool, offset: Int)
    case null(offset: Int)

    var offset: Int {
        switch self {
        case let .object(_, offset), let .array(_, offset), let .string(_, offset),
             let .number(_, offset), let .bool(_, offset), let .null(offset):
            return offset
        }
    }

    /// What kind of value this is, for error messages ("expected an array, got a string").
    var kind: String {
        switch self {
        case .object: return "an object"
        case .array: return "an array"
        case .string: return "a string"
        case .number: return "a number"
        case .bool: return "a boolean"
        case .null: return "null"
        }
    }
}

/// One `"key": value` pair of an object, in file order.
struct JSONMember: Sendable {
    var key: String
    var keyOffset: Int
    var value: JSONValue
}

struct JSONParser {
    /// Deepest nesting accepted. A safetensors header needs 3; the limit keeps a
    /// hostile `[[[[...` from exhausting the stack through recursion.
    static let maxDepth = 64
    /// Most values accepted in one text. A safetensors header holds about 10 per tensor, so
    /// this admits ~400 000 tensors while capping the tree near 128 MB: without it a valid
    /// 100 MB header of `[1,1,1,...]` would cost gigabytes.
    static let maxValues = 1 << 22

    private var valueCount = 0

    private let bytes: UnsafeRawBufferPointer
    private var pos = 0
    /// Added to every reported offset (the text's position in its file).
    private let base: Int
    private let format: String

    /// Parses `bytes` as one JSON value surrounded by optional whitespace.
    static func parse(
        _ bytes: UnsafeRawBufferPointer, format: String, baseOffset: Int
    ) throws(NormKitError) -> JSONValue {
        var parser = JSONParser(bytes: bytes, base: baseOffset, format: format)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        if parser.pos < bytes.count {
            throw parser.error("unexpected \(parser.describeByte()) after the end of the JSON value")
        }
        return value
    }

    private init(bytes: UnsafeRawBufferPointer, base: Int, format: String) {
        self.bytes = bytes
        self.base = base
        self.format = format
    }

    private func error(_ reason: String, at position: Int? = nil) -> NormKitError {
        .invalidFile(format: format, offset: base &+ (position ?? pos), reason: reason)
    }

    private var peek: UInt8? { pos < bytes.count ? bytes[pos] : nil }

    private func describeByte() -> String {
        guard let b = peek else { return "end of header" }
        if b >= 0x20 && b < 0x7F { return "'\(Character(Unicode.Scalar(b)))'" }
        return "byte 0x" + String(b, radix: 16)
    }

    private mutating func skipWhitespace() {
        while let b = peek, b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D { pos += 1 }
    }

    private mutating func expect(_ byte: UInt8, _ what: String) throws(NormKitError) {
        guard peek == byte else { throw error("expected \(what), got \(describeByte())") }
        pos += 1
    }

    private mutating func parseValue(depth: Int) throws(NormKitError) -> JSONValue {
        guard depth < Self.maxDepth else {
            throw error("JSON nested deeper than \(Self.maxDepth) levels")
        }
        valueCount += 1
        guard valueCount <= Self.maxValues else {
            throw error("the header holds more than \(Self.maxValues) JSON values")
        }
        let start = pos
        switch peek {
        case UInt8(ascii: "{"): return try parseObject(depth: depth)
        case UInt8(ascii: "["): return try parseArray(depth: depth)
        case UInt8(ascii: "\""): return .string(try parseString(), offset: base &+ start)
        case UInt8(ascii: "t"): try literal("true"); return .bool(true, offset: base &+ start)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false, offset: base &+ start)
        case UInt8(ascii: "n"): try literal("null"); return .null(offset: base &+ start)
        case let b? where b == UInt8(ascii: "-") || (b >= 0x30 && b <= 0x39):
            return .number(try parseNumber(), offset: base &+ start)
        default:
            throw error("expected a JSON value, got \(describeByte())")
        }
    }

    private mutating func literal(_ word: StaticString) throws(NormKitError) {
        let start = pos
        let count = word.utf8CodeUnitCount
        guard bytes.count - pos >= count else { throw error("invalid literal", at: start) }
        let p = word.utf8Start
        for i in 0..<count where bytes[pos + i] != p[i] {
            throw error("invalid literal (expected '\(word)')", at: start)
        }
        pos += count
    }

    private mutating func parseObject(depth: Int) throws(NormKitError) -> JSONValue {
        let start = pos
        pos += 1  // '{'
        var members: [JSONMember] = []
        var seen: Set<String> = []
        skipWhitespace()
        if peek == UInt8(ascii: "}") {
            pos += 1
            return .object(members, offset: base &+ start)
        }
        while true {
            skipWhitespace()
            let keyOffset = pos
            guard peek == UInt8(ascii: "\"") else {
                throw error("expected a string key, got \(describeByte())")
            }
            let key = try parseString()
            guard seen.insert(key).inserted else {
                throw error("duplicate key '\(key)'", at: keyOffset)
            }
            skipWhitespace()
            try expect(UInt8(ascii: ":"), "':' after key '\(key)'")
            skipWhitespace()
            let value = try parseValue(depth: depth + 1)
            members.append(JSONMember(key: key, keyOffset: base &+ keyOffset, value: value))
            skipWhitespace()
            if peek == UInt8(ascii: ",") { pos += 1; continue }
            try expect(UInt8(ascii: "}"), "',' or '}' in object")
            return .object(members, offset: base &+ start)
        }
    }

    private mutating func parseArray(depth: Int) throws(NormKitError) -> JSONValue {
        let start = pos
        pos += 1  // '['
        var elements: [JSONValue] = []
        skipWhitespace()
        if peek == UInt8(ascii: "]") {
            pos += 1
            return .array(elements, offset: base &+ start)
        }
        while true {
            skipWhitespace()
            elements.append(try parseValue(depth: depth + 1))
            skipWhitespace()
            if peek == UInt8(ascii: ",") { pos += 1; continue }
            try expect(UInt8(ascii: "]"), "',' or ']' in array")
            return .array(elements, offset: base &+ start)
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, returned as its text.
    private mutating func parseNumber() throws(NormKitError) -> String {
        let start = pos
        func digits(_ parser: inout JSONParser) -> Int {
            var n = 0
            while let b = parser.peek, b >= 0x30 && b <= 0x39 { parser.pos += 1; n += 1 }
            return n
        }
        if peek == UInt8(ascii: "-") { pos += 1 }
        if peek == UInt8(ascii: "0") {
            pos += 1
            if let b = peek, b >= 0x30 && b <= 0x39 { throw error("number with a leading zero", at: start) }
        } else if digits(&self) == 0 {
            throw error("expected digits in number", at: start)
        }
        if peek == UInt8(ascii: ".") {
            pos += 1
            if digits(&self) == 0 { throw error("expected digits after '.' in number", at: start) }
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            pos += 1
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { pos += 1 }
            if digits(&self) == 0 { throw error("expected digits in exponent", at: start) }
        }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<pos]), as: UTF8.self)
    }

    /// A string starting at the opening quote. Raw bytes must be valid UTF-8 (the
    /// caller checks the whole text first) and not control characters; escapes
    /// include `\uXXXX` with surrogate pairs, and a lone surrogate is an error.
    private mutating func parseString() throws(NormKitError) -> String {
        let start = pos
        pos += 1  // opening quote
        var utf8: [UInt8] = []
        while true {
            guard let b = peek else { throw error("unterminated string", at: start) }
            if b == UInt8(ascii: "\"") { pos += 1; break }
            if b < 0x20 { throw error("control character 0x\(String(b, radix: 16)) in a string; it must be escaped") }
            if b != UInt8(ascii: "\\") { utf8.append(b); pos += 1; continue }
            let escapeStart = pos
            pos += 1
            guard let e = peek else { throw error("unterminated escape", at: escapeStart) }
            pos += 1
            switch e {
            case UInt8(ascii: "\""): utf8.append(0x22)
            case UInt8(ascii: "\\"): utf8.append(0x5C)
            case UInt8(ascii: "/"): utf8.append(0x2F)
            case UInt8(ascii: "b"): utf8.append(0x08)
            case UInt8(ascii: "f"): utf8.append(0x0C)
            case UInt8(ascii: "n"): utf8.append(0x0A)
            case UInt8(ascii: "r"): utf8.append(0x0D)
            case UInt8(ascii: "t"): utf8.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4(escapeStart)
                if scalar >= 0xD800 && scalar < 0xDC00 {
                    // A high surrogate must be followed by an escaped low surrogate.
                    guard bytes.count - pos >= 6, bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") else {
                        throw error("unpaired surrogate in \\u escape", at: escapeStart)
                    }
                    pos += 2
                    let low = try hex4(escapeStart)
                    guard low >= 0xDC00 && low < 0xE000 else {
                        throw error("unpaired surrogate in \\u escape", at: escapeStart)
                    }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if scalar >= 0xDC00 && scalar < 0xE000 {
                    throw error("unpaired surrogate in \\u escape", at: escapeStart)
                }
                guard let s = Unicode.Scalar(scalar) else {
                    throw error("invalid \\u escape", at: escapeStart)
                }
                utf8.append(contentsOf: String(Character(s)).utf8)
            default:
                throw error("invalid escape '\\\(Character(Unicode.Scalar(e)))'", at: escapeStart)
            }
        }
        return String(decoding: utf8, as: UTF8.self)
    }

    private mutating func hex4(_ escapeStart: Int) throws(NormKitError) -> UInt32 {
        guard bytes.count - pos >= 4 else { throw error("truncated \\u escape", at: escapeStart) }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let b = bytes[pos]
            let d: UInt32
            switch b {
            case 0x30...0x39: d = UInt32(b - 0x30)
            case 0x41...0x46: d = UInt32(b - 0x41 + 10)
            case 0x61...0x66: d = UInt32(b - 0x61 + 10)
            default: throw error("invalid hex digit in \\u escape", at: escapeStart)
            }
            v = v << 4 | d
            pos += 1
        }
        return v
    }
}

enum JSONText {
    /// `s` as a JSON string literal, quotes included: `"`, `\` and control
    /// characters escaped, everything else as UTF-8.
    static func quoted(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    /// The index of the first byte where `bytes` stops being valid UTF-8, or nil
    /// when all of it is valid. (Decoding replaces each invalid sequence with
    /// U+FFFD, so valid text, and only valid text, re-encodes to the same bytes.)
    static func firstInvalidUTF8(_ bytes: UnsafeRawBufferPointer) -> Int? {
        let decoded = String(decoding: bytes, as: UTF8.self)
        var i = 0
        for b in decoded.utf8 {
            if i >= bytes.count || bytes[i] != b { return i }
            i += 1
        }
        return i == bytes.count ? nil : i
    }
}
