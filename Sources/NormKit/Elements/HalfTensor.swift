// A dense tensor of half-precision elements, and the tensor-level half forms of every
// norm (docs/architecture.md, "Half-precision elements": why a second tensor type and
// not a generic Tensor).

/// A dense, row-major tensor of 16-bit floating-point elements (``BFloat16`` or
/// `Float16`), of any rank >= 1: half the bytes of a ``Tensor``.
///
/// A value type with copy-on-write storage, like ``Tensor``. Norms normalise it with
/// their float weights, in float32 arithmetic, and write the same element type:
///
/// ```swift
/// // bf16 activations straight from a file's bytes: no Float copy anywhere.
/// let x = try HalfTensor<BFloat16>(shape: [4, 768], littleEndianBytes: bytes)
/// let y = try norm.forward(x)          // HalfTensor<BFloat16>
/// ```
public struct HalfTensor<Element: HalfPrecisionElement>: Sendable, Equatable {
    @usableFromInline internal var _shape: [Int]
    @usableFromInline internal var _elements: [Element]

    /// The size of each dimension, outermost first.
    public var shape: [Int] { _shape }
    /// The elements in row-major order.
    public var elements: [Element] { _elements }
    /// The number of elements: the product of ``shape``.
    public var scalarCount: Int { _elements.count }
    /// The number of dimensions.
    public var rank: Int { _shape.count }

    /// Creates a tensor from its shape and row-major elements.
    ///
    /// - Throws: ``NormKitError`` when the shape is empty, has a negative dimension or
    ///   overflows `Int`, or when `elements.count` is not the product of `shape`.
    public init(shape: [Int], elements: [Element]) throws(NormKitError) {
        let count = try Shape.elementCount(shape)
        guard elements.count == count else {
            throw .scalarCountMismatch(shape: shape, expected: count, actual: elements.count)
        }
        _shape = shape
        _elements = elements
    }

    /// Creates a tensor from its shape and the elements' 16-bit patterns.
    ///
    /// - Throws: as ``init(shape:elements:)``.
    public init(shape: [Int], bitPatterns: [UInt16]) throws(NormKitError) {
        try self.init(shape: shape, elements: bitPatterns.map(Element.init(bitPattern:)))
    }

    /// Creates a tensor from the little-endian bytes of its elements (a safetensors
    /// `BF16`/`F16` payload, a `<f2` .npy body): one copy of the bytes, no conversion.
    ///
    /// - Throws: as ``init(shape:elements:)``, with the count in elements when
    ///   `bytes.count` is not twice the shape's product.
    public init(shape: [Int], littleEndianBytes bytes: UnsafeRawBufferPointer) throws(NormKitError) {
        let count = try Shape.elementCount(shape)
        guard bytes.count == count &* 2 else {
            throw .scalarCountMismatch(shape: shape, expected: count, actual: bytes.count / 2)
        }
        _shape = shape
        _elements = [Element](unsafeUninitializedCapacity: count) { out, initialized in
            for i in 0 ..< count {
                let lo = UInt16(bytes[2 &* i]), hi = UInt16(bytes[2 &* i &+ 1])
                out[i] = Element(bitPattern: lo | hi << 8)
            }
            initialized = count
        }
    }

    /// `tensor`'s values rounded to `Element` (to nearest, ties to even).
    public init(rounding tensor: Tensor) {
        _shape = tensor.shape
        _elements = tensor.scalars.map(Element.init)
    }

    /// A tensor of `shape` filled by `fill`, which must initialise every element.
    init(uncheckedShape shape: [Int], count: Int, _ fill: (UnsafeMutableBufferPointer<Element>) -> Void) {
        _shape = shape
        _elements = [Element](unsafeUninitializedCapacity: count) { out, initialized in
            fill(out)
            initialized = count
        }
    }

    /// Calls `body` with the elements' contiguous storage.
    public func withUnsafeBufferPointer<R, E: Error>(
        _ body: (UnsafeBufferPointer<Element>) throws(E) -> R
    ) throws(E) -> R {
        try _elements.withUnsafeBufferPointer { (p) throws(E) -> R in try body(p) }
    }

    /// Calls `body` with the elements' contiguous storage, for writing (copies shared
    /// storage first).
    public mutating func withUnsafeMutableBufferPointer<R, E: Error>(
        _ body: (UnsafeMutableBufferPointer<Element>) throws(E) -> R
    ) throws(E) -> R {
        try _elements.withUnsafeMutableBufferPointer { (p: inout UnsafeMutableBufferPointer<Element>) throws(E) -> R in try body(p) }
    }
}

extension Tensor {
    /// The half tensor's values as floats, exactly.
    public init<T: HalfPrecisionElement>(widening half: HalfTensor<T>) {
        let count = half.scalarCount
        self.init(uncheckedShape: half.shape, count: count) { out in
            half.withUnsafeBufferPointer { x in
                guard count > 0 else { return }
                Kernels.half(T._halfFormat).widen(HalfValidation.bits(x.baseAddress)!, out.baseAddress!, count)
            }
        }
    }
}

extension Normalization {
    /// Normalises a half-precision `input` into a new tensor of the same type and shape.
    ///
    /// Rows are widened to float inside the engine, normalised exactly as the float
    /// `forward(_:)` normalises them, and rounded once to `T`.
    ///
    /// - Throws: as `forward(_:)`.
    public func forward<T: HalfPrecisionElement>(_ input: HalfTensor<T>) throws(NormKitError) -> HalfTensor<T> {
        let layout = try _layout(inputShape: input.shape)
        return HalfTensor(uncheckedShape: input.shape, count: input.scalarCount) { out in
            input.withUnsafeBufferPointer { x in
                _runHalf(layout, T._halfFormat, x: HalfValidation.bits(x.baseAddress),
                         y: HalfValidation.mutableBits(out.baseAddress))
            }
        }
    }

    /// Normalises a half-precision `input` into `output`, which must have the same shape.
    ///
    /// - Throws: as `forward(_:)`, and ``NormKitError/shapeMismatch(name:expected:actual:)``
    ///   when `output`'s shape differs from `input`'s (then `output` is untouched).
    public func forward<T: HalfPrecisionElement>(
        _ input: HalfTensor<T>, into output: inout HalfTensor<T>
    ) throws(NormKitError) {
        let layout = try _layout(inputShape: input.shape)
        try NormValidation.output(output.shape, input: input.shape)
        input.withUnsafeBufferPointer { x in
            output.withUnsafeMutableBufferPointer { out in
                _runHalf(layout, T._halfFormat, x: HalfValidation.bits(x.baseAddress),
                         y: HalfValidation.mutableBits(out.baseAddress))
            }
        }
    }

    /// The half-precision residual stream in place: `residual = T(input + residual)` (the
    /// exact sum rounded once), then `output = norm(residual)`, bitwise the plain half
    /// forward of the rounded stream. Validates everything before writing anything.
    ///
    /// - Throws: as `forward(_:)`, and ``NormKitError/shapeMismatch(name:expected:actual:)``
    ///   when `residual`'s or `output`'s shape is not `input`'s.
    public func forward<T: HalfPrecisionElement>(
        _ input: HalfTensor<T>, addingTo residual: inout HalfTensor<T>, into output: inout HalfTensor<T>
    ) throws(NormKitError) {
        let layout = try _layout(inputShape: input.shape)
        try NormValidation.residual(residual.shape, input: input.shape)
        try NormValidation.output(output.shape, input: input.shape)
        input.withUnsafeBufferPointer { x in
            residual.withUnsafeMutableBufferPointer { r in
                output.withUnsafeMutableBufferPointer { out in
                    let stream = HalfValidation.mutableBits(r.baseAddress)
                    _runHalf(layout, T._halfFormat, x: HalfValidation.bits(x.baseAddress), residual: stream.map { UnsafePointer($0) },
                             sum: stream, y: HalfValidation.mutableBits(out.baseAddress))
                }
            }
        }
    }
}
