// The Python literal a .npy header holds (a dict of strings, bools and int tuples), and
// its parser, on the shared ByteCursor.
import NormKit

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

    private let utf8: Bool
    private var cursor: ByteCursor

    static func parse(_ bytes: UnsafeRawBufferPointer, utf8: Bool, baseOffset: Int) throws(NormKitError) -> PythonLiteral {
        var p = PythonLiteralParser(
            utf8: utf8,
            cursor: ByteCursor(bytes, base: baseOffset, format: NPYHeader.format, reasonPrefix: "header: ", whitespace: .python))
        p.cursor.skipWhitespace()
        let value = try p.parseValue(depth: 0)
        p.cursor.skipWhitespace()
        if !p.cursor.atEnd {
            throw p.cursor.error("unexpected \(p.cursor.describeByte()) after the header dict")
        }
        return value
    }

    private init(utf8: Bool, cursor: ByteCursor) {
        self.utf8 = utf8
        self.cursor = cursor
    }

    private mutating func parseValue(depth: Int) throws(NormKitError) -> PythonLiteral {
        guard depth < Self.maxDepth else { throw cursor.error("nested deeper than \(Self.maxDepth) levels") }
        let start = cursor.pos
        guard let b = cursor.peek else { throw cursor.error("expected a value, got end of header") }
        switch b {
        case UInt8(ascii: "{"):
            return try parseDict(depth: depth)
        case UInt8(ascii: "("):
            cursor.pos += 1
            let (items, trailingComma) = try parseSequence(close: UInt8(ascii: ")"), depth: depth)
            // (x) is x in parentheses; (x,) and () are tuples.
            if items.count == 1 && !trailingComma { return items[0] }
            return .tuple(items, offset: cursor.offset(start))
        case UInt8(ascii: "["):
            cursor.pos += 1
            return .list(try parseSequence(close: UInt8(ascii: "]"), depth: depth).items, offset: cursor.offset(start))
        case UInt8(ascii: "'"), UInt8(ascii: "\""):
            return .string(try parseString(), offset: cursor.offset(start))
        case UInt8(ascii: "-"), UInt8(ascii: "+"), 0x30...0x39:
            return .int(try parseInt(), offset: cursor.offset(start))
        default:
            let word = identifier()
            switch word {
            case "True": return .bool(true, offset: cursor.offset(start))
            case "False": return .bool(false, offset: cursor.offset(start))
            case "None": return .none(offset: cursor.offset(start))
            default:
                cursor.pos = start
                throw cursor.error("expected a Python literal, got \(word.isEmpty ? cursor.describeByte() : "'\(word)'")")
            }
        }
    }

    private mutating func identifier() -> String {
        let start = cursor.pos
        cursor.skip { ByteCursor.isLetter($0) || $0 == UInt8(ascii: "_") }
        return cursor.text(from: start)
    }

    /// Items up to `close`, separated by commas, an optional trailing comma.
    private mutating func parseSequence(close: UInt8, depth: Int) throws(NormKitError) -> (items: [PythonLiteral], trailingComma: Bool) {
        var items: [PythonLiteral] = []
        var trailingComma = false
        while true {
            cursor.skipWhitespace()
            if cursor.peek == close { cursor.pos += 1; return (items, trailingComma) }
            items.append(try parseValue(depth: depth + 1))
            trailingComma = false
            cursor.skipWhitespace()
            if cursor.consume(UInt8(ascii: ",")) { trailingComma = true; continue }
            guard cursor.peek == close else {
                throw cursor.error("expected ',' or '\(Character(Unicode.Scalar(close)))', got \(cursor.describeByte())")
            }
        }
    }

    private mutating func parseDict(depth: Int) throws(NormKitError) -> PythonLiteral {
        let start = cursor.pos
        cursor.pos += 1  // '{'
        var entries: [(key: String, keyOffset: Int, value: PythonLiteral)] = []
        var seen: Set<[UInt8]> = []  // keys by their bytes: one hash per key, not a scan per key
        while true {
            cursor.skipWhitespace()
            if cursor.peek == UInt8(ascii: "}") { cursor.pos += 1; return .dict(entries, offset: cursor.offset(start)) }
            let keyOffset = cursor.pos
            guard cursor.peek == UInt8(ascii: "'") || cursor.peek == UInt8(ascii: "\"") else {
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
            entries.append((key, cursor.offset(keyOffset), value))
            cursor.skipWhitespace()
            if cursor.consume(UInt8(ascii: ",")) { continue }
            try cursor.expect(UInt8(ascii: "}"), "',' or '}' in dict")
            return .dict(entries, offset: cursor.offset(start))
        }
    }

    /// A quoted string with the simple backslash escapes; bytes are UTF-8 (version 3)
    /// or Latin-1 (versions 1 and 2).
    private mutating func parseString() throws(NormKitError) -> String {
        let start = cursor.pos
        let quote = cursor.bytes[cursor.pos]
        cursor.pos += 1
        var out: [UInt8] = []
        while true {
            guard let b = cursor.peek else { throw cursor.error("unterminated string", at: start) }
            cursor.pos += 1
            if b == quote { break }
            if b == 0x0A { throw cursor.error("newline inside a string", at: start) }
            if b == UInt8(ascii: "\\") {
                guard let e = cursor.peek else { throw cursor.error("unterminated string", at: start) }
                cursor.pos += 1
                switch e {
                case UInt8(ascii: "\\"), UInt8(ascii: "'"), UInt8(ascii: "\""): out.append(e)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "r"): out.append(0x0D)
                default: throw cursor.error("unsupported escape in a string", at: cursor.pos - 2)
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
        let start = cursor.pos
        var negative = false
        if cursor.peek == UInt8(ascii: "-") || cursor.peek == UInt8(ascii: "+") {
            negative = cursor.peek == UInt8(ascii: "-")
            cursor.pos += 1
        }
        var value: Int? = 0
        var digits = 0
        while let b = cursor.peek, ByteCursor.isDigit(b) {
            if let v = value {
                let (m, o1) = v.multipliedReportingOverflow(by: 10)
                let (s, o2) = m.addingReportingOverflow(Int(b - 0x30))
                value = (o1 || o2) ? nil : s
            }
            digits += 1
            cursor.pos += 1
        }
        guard digits > 0 else { throw cursor.error("expected digits", at: start) }
        if cursor.peek == UInt8(ascii: "L") || cursor.peek == UInt8(ascii: "l") { cursor.pos += 1 }
        if let b = cursor.peek, ByteCursor.isLetter(b) || b == UInt8(ascii: ".") {
            throw cursor.error("expected an int, got a malformed number", at: start)
        }
        if negative, let v = value { return -v }
        return value
    }
}
