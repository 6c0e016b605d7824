// The reading position both header parsers share: the JSON reader of safetensors
// (JSON.swift) and the Python-literal reader of .npy (NPY/PythonLiteral.swift).
// It owns what every byte-level parser here needs: the next byte, an error that names
// the file offset, a printable name for the byte found, and whitespace skipping.
import NormKit

/// A position in a borrowed byte buffer that reports errors at file offsets.
///
/// Every read is checked against the count, so no input can make it trap.
struct ByteCursor {
    /// The whitespace a grammar allows between tokens.
    enum Whitespace {
        /// RFC 8259: space, tab, line feed, carriage return.
        case json
        /// Python's tokenizer inside brackets: JSON's four and form feed.
        case python
    }

    let bytes: UnsafeRawBufferPointer
    /// The index of the next byte to read.
    var pos = 0
    /// Added to every reported offset (the text's position in its file).
    let base: Int
    /// The file format named in errors (`invalidFile(format:...)`).
    let format: String
    /// Put before every error reason (e.g. `"header: "`).
    let reasonPrefix: String
    let whitespace: Whitespace

    init(_ bytes: UnsafeRawBufferPointer, base: Int, format: String, reasonPrefix: String = "", whitespace: Whitespace) {
        self.bytes = bytes
        self.base = base
        self.format = format
        self.reasonPrefix = reasonPrefix
        self.whitespace = whitespace
    }

    /// The next byte, or nil at the end.
    var peek: UInt8? { pos < bytes.count ? bytes[pos] : nil }

    /// Whether every byte has been read.
    var atEnd: Bool { pos >= bytes.count }

    /// The file offset of buffer index `position` (the current one by default).
    func offset(_ position: Int? = nil) -> Int { base &+ (position ?? pos) }

    /// An `invalidFile` error at buffer index `position` (the current one by default).
    func error(_ reason: String, at position: Int? = nil) -> NormKitError {
        .invalidFile(format: format, offset: offset(position), reason: reasonPrefix + reason)
    }

    /// The next byte as an error message names it: `'x'` when printable, else `byte 0x..`.
    func describeByte() -> String {
        guard let b = peek else { return "end of header" }
        if b >= 0x20 && b < 0x7F { return "'\(Character(Unicode.Scalar(b)))'" }
        return "byte 0x" + String(b, radix: 16)
    }

    /// Moves past the grammar's whitespace.
    mutating func skipWhitespace() {
        let formFeed = whitespace == .python
        while let b = peek, b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D || (formFeed && b == 0x0C) { pos += 1 }
    }

    /// Consumes `byte` if it comes next; returns whether it did.
    @discardableResult
    mutating func consume(_ byte: UInt8) -> Bool {
        guard peek == byte else { return false }
        pos += 1
        return true
    }

    /// Consumes `byte`, or throws "expected `what`, got ...".
    mutating func expect(_ byte: UInt8, _ what: String) throws(NormKitError) {
        guard peek == byte else { throw error("expected \(what), got \(describeByte())") }
        pos += 1
    }

    /// Moves past the bytes that satisfy `predicate`; returns how many.
    @discardableResult
    mutating func skip(while predicate: (UInt8) -> Bool) -> Int {
        let start = pos
        while let b = peek, predicate(b) { pos += 1 }
        return pos - start
    }

    /// Whether `b` is an ASCII digit.
    static func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }

    /// Whether `b` is an ASCII letter.
    static func isLetter(_ b: UInt8) -> Bool { (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) }

    /// The bytes from index `start` up to the current position, decoded as UTF-8.
    func text(from start: Int) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<pos]), as: UTF8.self)
    }
}

enum UTF8Validation {
    /// The index of the first byte of the first ill-formed UTF-8 sequence in `bytes`,
    /// or nil when all of it is valid. Reads the bytes in place (no copy of the text),
    /// with the standard library's validating decoder (overlong forms, surrogates and
    /// code points above U+10FFFF are ill-formed).
    static func firstInvalidIndex(_ bytes: UnsafeRawBufferPointer) -> Int? {
        var parser = Unicode.UTF8.ForwardParser()
        var iterator = bytes.makeIterator()
        var index = 0
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let scalar): index += scalar.count
            case .emptyInput: return nil
            case .error: return index
            }
        }
    }
}
