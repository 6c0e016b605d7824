/// Every recoverable problem NormKit reports.
///
/// Each case carries what was expected and what came, and ``description`` turns
/// them into one sentence, so a log line is enough to find the fault:
///
/// ```
/// input's last dimension must be 768 (the layer's dim), got shape [2, 4, 512]
/// ```
public enum NormKitError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A shape holds a negative dimension.
    case negativeDimension(shape: [Int])
    /// The product of a shape's dimensions does not fit in `Int`.
    case shapeOverflow(shape: [Int])
    /// A shape holds more elements than any process can address (over 2^45 floats, 128 TiB).
    case tooLarge(shape: [Int], elementCount: Int)
    /// A shape has no dimensions where at least one is needed.
    case emptyShape
    /// The number of scalars does not match the product of the shape.
    case scalarCountMismatch(shape: [Int], expected: Int, actual: Int)
    /// A reshape to a shape with a different number of elements.
    case reshapeMismatch(from: [Int], to: [Int])
    /// An input whose last dimension is not the layer's `dim`.
    case inputShapeMismatch(expectedLastDimension: Int, actual: [Int])
    /// A weight, bias or other parameter tensor of the wrong shape.
    case parameterShapeMismatch(name: String, expected: [Int], actual: [Int])
    /// Two tensors that must have the same shape do not.
    case shapeMismatch(name: String, expected: [Int], actual: [Int])
    /// A norm layer's `dim` below 1 (LayerNorm, RMSNorm).
    case invalidDimension(Int)
    /// A norm layer's `eps` that is not finite and greater than zero.
    case invalidEpsilon(Float)
    /// A setting outside its allowed range (a thread count, an iteration count, ...).
    case invalidArgument(name: String, expected: String, actual: String)
    /// A malformed or unsupported file; `offset` is the byte offset of the fault when known.
    case invalidFile(format: String, offset: Int?, reason: String)
    /// A tensor or layer name that a file does not hold; `available` lists what it does hold.
    case missingTensor(name: String, available: [String])
    /// A checkpoint layer of another kind than the one asked for: a weight-only layer
    /// (an RMSNorm, in Llama-family files) loaded as a LayerNorm, or a layer with a bias
    /// (a LayerNorm) loaded as an RMSNorm. `reason` says what was found and what to call.
    case layerKindMismatch(name: String, reason: String)
    /// An error from the file system, with the path and the system's message.
    case io(path: String, reason: String)
    /// A well-formed file holding something NormKit does not read: a dtype it does not
    /// convert, or a scalar (rank 0) where a ``Tensor`` needs rank >= 1.
    case unsupported(format: String, reason: String)

    public var description: String {
        // Names, paths and reasons come from files and command lines: each field goes
        // through `sanitized` (control characters escaped, length capped), so no message
        // can carry a terminal escape or run to megabytes (docs/reliability.md, "Error messages").
        let s = { (text: String) in Self.sanitized(text) }
        switch self {
        case let .negativeDimension(shape):
            return "dimensions must be non-negative, got shape \(shape)"
        case let .shapeOverflow(shape):
            return "the element count of shape \(shape) overflows Int"
        case let .tooLarge(shape, count):
            return "shape \(shape) holds \(count) elements; at most 2^45 (\(1 << 45), 128 TiB of Float) can be allocated"
        case .emptyShape:
            return "a tensor needs at least one dimension (rank >= 1), got shape []"
        case let .scalarCountMismatch(shape, expected, actual):
            return "shape \(shape) needs \(expected) scalars, got \(actual)"
        case let .reshapeMismatch(from, to):
            return "cannot reshape \(from) (\(Self.count(from)) elements) to \(to) (\(Self.count(to)) elements)"
        case let .inputShapeMismatch(expected, actual):
            return "input's last dimension must be \(expected) (the layer's dim), got shape \(actual)"
        case let .parameterShapeMismatch(name, expected, actual):
            return "\(s(name)) must have shape \(expected), got \(actual)"
        case let .shapeMismatch(name, expected, actual):
            return "\(s(name)) must have shape \(expected), got \(actual)"
        case let .invalidDimension(dim):
            return "a norm layer's dim must be >= 1, got \(dim)"
        case let .invalidEpsilon(eps):
            return "a norm layer's eps must be finite and > 0, got \(eps)"
        case let .invalidArgument(name, expected, actual):
            return "\(s(name)) must be \(Self.sanitized(expected, limit: Self.reasonLimit)), got \(s(actual))"
        case let .invalidFile(format, offset, reason):
            let reason = Self.sanitized(reason, limit: Self.reasonLimit)
            if let offset { return "invalid \(s(format)) file at byte \(offset): \(reason)" }
            return "invalid \(s(format)) file: \(reason)"
        case let .missingTensor(name, available):
            // The full list stays in `available`; the sentence shows the first 50 (a GPT-2 XL
            // file holds ~580 tensor names).
            var list = available.isEmpty ? "none" : available.prefix(50).map(s).joined(separator: ", ")
            if available.count > 50 { list += ", ... (\(available.count - 50) more)" }
            return "no tensor or layer named '\(s(name))'; available: \(list)"
        case let .layerKindMismatch(name, reason):
            return "layer '\(s(name))': \(Self.sanitized(reason, limit: Self.reasonLimit))"
        case let .io(path, reason):
            return "\(s(path)): \(Self.sanitized(reason, limit: Self.reasonLimit))"
        case let .unsupported(format, reason):
            return "unsupported \(s(format)) content: \(Self.sanitized(reason, limit: Self.reasonLimit))"
        }
    }

    /// The cap on a reason (which may quote a name) in ``description``, in characters.
    package static let reasonLimit = 600

    /// `text` safe to show on a terminal and bounded: control characters (C0, DEL, C1)
    /// and the line, paragraph and bidirectional-override separators are written as
    /// `\u{1B}`; a text of more than `limit` characters keeps its first `limit - limit/4`
    /// and last `limit/4` characters with `... (N characters) ...` between them, so a
    /// message is at most a constant longer than `limit` whatever the input, and keeps
    /// both the start of a name and the end of a sentence. Every name, path and reason in
    /// ``description`` passes through it, and so do `normkit`'s listings and messages.
    package static func sanitized(_ text: String, limit: Int = 120) -> String {
        let scalars = text.unicodeScalars
        let total = scalars.count
        let tail = total > limit ? max(0, limit / 4) : 0
        let head = total > limit ? max(0, limit - tail) : total
        var out = ""
        func append(_ scalar: Unicode.Scalar) {
            let v = scalar.value
            if v < 0x20 || (0x7F...0x9F).contains(v) || (0x2028...0x2029).contains(v)
                || (0x202A...0x202E).contains(v) || (0x2066...0x2069).contains(v) {
                out += "\\u{\(String(v, radix: 16, uppercase: true))}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        for scalar in scalars.prefix(head) { append(scalar) }
        if total > limit {
            out += "... (\(total) characters) ..."
            for scalar in scalars.suffix(tail) { append(scalar) }
        }
        return out
    }

    private static func count(_ shape: [Int]) -> String {
        Shape.product(shape).map(String.init) ?? "overflowing"
    }
}
