// A small, strict JSON (RFC 8259) reader for the safetensors header, and the string
// escaping its writer needs. Not Foundation's JSONSerialization: this one reports the
// byte offset of every fault, keeps numbers as their text (so a shape dimension is
// parsed as an exact integer, never through Double), rejects duplicate keys, limits
// nesting, and cannot trap on any input (each index is checked against the count).
import NormKit

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
    private var cursor: ByteCursor

    /// Parses `bytes` as one JSON value surrounded by optional whitespace.
    static func parse(
        _ bytes: UnsafeRawBufferPointer, format: String, baseOffset: Int
    ) throws(NormKitError) -> JSONValue {
        var parser = JSONParser(cursor: ByteCursor(bytes, base: baseOffset, format: format, whitespace: .json))
        parser.cursor.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.cursor.skipWhitespace()
        if !parser.cursor.atEnd {
            throw parser.cursor.error("unexpected \(parser.cursor.describeByte()) after the end of the JSON value")
        }
        return value
    }

    private init(cursor: ByteCursor) { self.cursor = cursor }

    private mutating func parseValue(depth: Int) throws(NormKitError) -> JSONValue {
        guard depth < Self.maxDepth else {
            throw cursor.error("JSON nested deeper than \(Self.maxDepth) levels")
        }
        valueCount += 1
        guard valueCount <= Self.maxValues else {
            throw cursor.error("the header holds more than \(Self.maxValues) JSON values")
        }
        let start = cursor.pos
        switch cursor.peek {
        case UInt8(ascii: "{"): return try parseObject(depth: depth)
        case UInt8(ascii: "["): return try parseArray(depth: depth)
        case UInt8(ascii: "\""): return .string(try parseString(), offset: cursor.offset(start))
        case UInt8(ascii: "t"): try literal("true"); return .bool(true, offset: cursor.offset(start))
        case UInt8(ascii: "f"): try literal("false"); return .bool(false, offset: cursor.offset(start))
        case UInt8(ascii: "n"): try literal("null"); return .null(offset: cursor.offset(start))
        case let b? where b == UInt8(ascii: "-") || (b >= 0x30 && b <= 0x39):
            return .number(try parseNumber(), offset: cursor.offset(start))
        default:
            throw cursor.error("expected a JSON value, got \(cursor.describeByte())")
        }
    }

    private mutating func literal(_ word: StaticString) throws(NormKitError) {
        let start = cursor.pos
        let count = word.utf8CodeUnitCount
        guard cursor.bytes.count - cursor.pos >= count else { throw cursor.error("invalid literal", at: start) }
        let p = word.utf8Start
        for i in 0..<count where cursor.bytes[cursor.pos + i] != p[i] {
            throw cursor.error("invalid literal (expected '\(word)')", at: start)
        }
        cursor.pos += count
    }

    private mutating func parseObject(depth: Int) throws(NormKitError) -> JSONValue {
        let start = cursor.pos
        cursor.pos += 1  // '{'
        var members: [JSONMember] = []
        // Keys compared by their UTF-8 bytes, as Python's json and safetensors do: a
        // Swift String compares by canonical equivalence, so "café" as one scalar and as
        // e + combining accent would be the same key.
        var seen: Set<[UInt8]> = []
        cursor.skipWhitespace()
        if cursor.peek == UInt8(ascii: "}") {
            cursor.pos += 1
            return .object(members, offset: cursor.offset(start))
        }
        while true {
            cursor.skipWhitespace()
            let keyOffset = cursor.pos
            guard cursor.peek == UInt8(ascii: "\"") else {
                throw cursor.error("expected a string key, got \(cursor.describeByte())")
            }
            let key = try parseString()
            guard seen.insert(Array(key.utf8)).inserted else {
                throw cursor.error("duplicate key '\(key)'", at: keyOffset)
            }
            cursor.skipWhitespace()
            try cursor.expect(UInt8(ascii: ":"), "':' after key '\(key)'")
            cursor.skipWhitespace()
            let value = try parseValue(depth: depth + 1)
            members.append(JSONMember(key: key, keyOffset: cursor.offset(keyOffset), value: value))
            cursor.skipWhitespace()
            if cursor.consume(UInt8(ascii: ",")) { continue }
            try cursor.expect(UInt8(ascii: "}"), "',' or '}' in object")
            return .object(members, offset: cursor.offset(start))
        }
    }

    private mutating func parseArray(depth: Int) throws(NormKitError) -> JSONValue {
        let start = cursor.pos
        cursor.pos += 1  // '['
        var elements: [JSONValue] = []
        cursor.skipWhitespace()
        if cursor.peek == UInt8(ascii: "]") {
            cursor.pos += 1
            return .array(elements, offset: cursor.offset(start))
        }
        while true {
            cursor.skipWhitespace()
            elements.append(try parseValue(depth: depth + 1))
            cursor.skipWhitespace()
            if cursor.consume(UInt8(ascii: ",")) { continue }
            try cursor.expect(UInt8(ascii: "]"), "',' or ']' in array")
            return .array(elements, offset: cursor.offset(start))
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, returned as its text.
    private mutating func parseNumber() throws(NormKitError) -> String {
        let start = cursor.pos
        cursor.consume(UInt8(ascii: "-"))
        if cursor.peek == UInt8(ascii: "0") {
            cursor.pos += 1
            if let b = cursor.peek, b >= 0x30 && b <= 0x39 { throw cursor.error("number with a leading zero", at: start) }
        } else if cursor.skip(while: ByteCursor.isDigit) == 0 {
            throw cursor.error("expected digits in number", at: start)
        }
        if cursor.peek == UInt8(ascii: ".") {
            cursor.pos += 1
            if cursor.skip(while: ByteCursor.isDigit) == 0 { throw cursor.error("expected digits after '.' in number", at: start) }
        }
        if cursor.peek == UInt8(ascii: "e") || cursor.peek == UInt8(ascii: "E") {
            cursor.pos += 1
            if cursor.peek == UInt8(ascii: "+") || cursor.peek == UInt8(ascii: "-") { cursor.pos += 1 }
            if cursor.skip(while: ByteCursor.isDigit) == 0 { throw cursor.error("expected digits in exponent", at: start) }
        }
        return cursor.text(from: start)
    }

    /// A string starting at the opening quote. Raw cursor.bytes must be valid UTF-8 (the
    /// caller checks the whole text first) and not control characters; escapes
    /// include `\uXXXX` with surrogate pairs, and a lone surrogate is an error.
    private mutating func parseString() throws(NormKitError) -> String {
        let start = cursor.pos
        cursor.pos += 1  // opening quote
        var utf8: [UInt8] = []
        while true {
            guard let b = cursor.peek else { throw cursor.error("unterminated string", at: start) }
            if b == UInt8(ascii: "\"") { cursor.pos += 1; break }
            if b < 0x20 { throw cursor.error("control character 0x\(String(b, radix: 16)) in a string; it must be escaped") }
            if b != UInt8(ascii: "\\") { utf8.append(b); cursor.pos += 1; continue }
            let escapeStart = cursor.pos
            cursor.pos += 1
            guard let e = cursor.peek else { throw cursor.error("unterminated escape", at: escapeStart) }
            cursor.pos += 1
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
                    guard cursor.bytes.count - cursor.pos >= 6, cursor.bytes[cursor.pos] == UInt8(ascii: "\\"), cursor.bytes[cursor.pos + 1] == UInt8(ascii: "u") else {
                        throw cursor.error("unpaired surrogate in \\u escape", at: escapeStart)
                    }
                    cursor.pos += 2
                    let low = try hex4(escapeStart)
                    guard low >= 0xDC00 && low < 0xE000 else {
                        throw cursor.error("unpaired surrogate in \\u escape", at: escapeStart)
                    }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if scalar >= 0xDC00 && scalar < 0xE000 {
                    throw cursor.error("unpaired surrogate in \\u escape", at: escapeStart)
                }
                guard let s = Unicode.Scalar(scalar) else {
                    throw cursor.error("invalid \\u escape", at: escapeStart)
                }
                utf8.append(contentsOf: String(Character(s)).utf8)
            default:
                throw cursor.error("invalid escape '\\\(Character(Unicode.Scalar(e)))'", at: escapeStart)
            }
        }
        return String(decoding: utf8, as: UTF8.self)
    }

    private mutating func hex4(_ escapeStart: Int) throws(NormKitError) -> UInt32 {
        guard cursor.bytes.count - cursor.pos >= 4 else { throw cursor.error("truncated \\u escape", at: escapeStart) }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let b = cursor.bytes[cursor.pos]
            let d: UInt32
            switch b {
            case 0x30...0x39: d = UInt32(b - 0x30)
            case 0x41...0x46: d = UInt32(b - 0x41 + 10)
            case 0x61...0x66: d = UInt32(b - 0x61 + 10)
            default: throw cursor.error("invalid hex digit in \\u escape", at: escapeStart)
            }
            v = v << 4 | d
            cursor.pos += 1
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
}
