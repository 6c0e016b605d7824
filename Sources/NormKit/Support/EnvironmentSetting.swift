// The one way NormKit reads its environment variables (NORMKIT_ISA, NORMKIT_THREADS):
// surrounding whitespace is ignored, an empty value means "not set", and a value that is
// set but invalid is refused with one line on stderr naming the variable, the value and
// what is used instead; it is never silently ignored.
import CNormKernels  // the C library (include/nk_platform.h)

enum EnvironmentSetting {
    /// `text` without surrounding ASCII whitespace (space, tab, CR, LF, VT, FF), or nil
    /// when nothing is left.
    static func trimmed(_ text: String) -> String? {
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || (0x09...0x0D).contains($0) }
        let bytes = Array(text.utf8)
        guard let first = bytes.firstIndex(where: { !isSpace($0) }),
              let last = bytes.lastIndex(where: { !isSpace($0) }) else { return nil }
        return String(decoding: bytes[first...last], as: UTF8.self)
    }

    /// A value as shown in a warning: sanitised and capped like every NormKit message.
    static func shown(_ text: String) -> String { NormKitError.sanitized(text, limit: 60) }

    /// Writes "NormKit: <warning>" to stderr with write(2): no shared stdio state, nothing buffered.
    static func warn(_ warning: String) {
        let line = Array("NormKit: \(warning)\n".utf8)
        _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }
}
