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
            return "\(name) must have shape \(expected), got \(actual)"
        case let .shapeMismatch(name, expected, actual):
            return "\(name) must have shape \(expected), got \(actual)"
        case let .invalidDimension(dim):
            return "a norm layer's dim must be >= 1, got \(dim)"
        case let .invalidEpsilon(eps):
            return "a norm layer's eps must be finite and > 0, got \(eps)"
        case let .invalidArgument(name, expected, actual):
            return "\(name) must be \(expected), got \(actual)"
        case let .invalidFile(format, offset, reason):
            if let offset { return "invalid \(format) file at byte \(offset): \(reason)" }
            return "invalid \(format) file: \(reason)"
        case let .missingTensor(name, available):
            // The full list stays in `available`; the sentence shows the first 50 (a GPT-2 XL
            // file holds ~580 tensor names).
            var list = available.isEmpty ? "none" : available.prefix(50).joined(separator: ", ")
            if available.count > 50 { list += ", ... (\(available.count - 50) more)" }
            return "no tensor or layer named '\(name)'; available: \(list)"
        case let .layerKindMismatch(name, reason):
            return "layer '\(name)': \(reason)"
        case let .io(path, reason):
            return "\(path): \(reason)"
        case let .unsupported(format, reason):
            return "unsupported \(format) content: \(reason)"
        }
    }

    private static func count(_ shape: [Int]) -> String {
        Shape.product(shape).map(String.init) ?? "overflowing"
    }
}
