/// A dense, row-major tensor of `Float`, of any rank >= 1.
///
/// `Tensor` is a value type: copies share storage until one of them is written to
/// (copy-on-write, through Swift's `Array`). A dimension may be 0; the shape's
/// product always equals ``scalarCount``.
///
/// ```swift
/// let x = try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
/// let y = try x.reshaped(to: [3, 2])
/// ```
public struct Tensor: Sendable, Equatable {
    @usableFromInline internal var _shape: [Int]
    @usableFromInline internal var _scalars: [Float]

    /// The size of each dimension, outermost first. The last one is the axis
    /// ``LayerNorm`` normalises over.
    public var shape: [Int] { _shape }

    /// The elements in row-major order (the last dimension varies fastest).
    public var scalars: [Float] { _scalars }

    /// The number of elements: the product of ``shape``.
    public var scalarCount: Int { _scalars.count }

    /// The number of dimensions.
    public var rank: Int { _shape.count }

    /// Creates a tensor from its shape and row-major scalars.
    ///
    /// - Throws: ``NormKitError`` when the shape is empty, has a negative dimension or
    ///   overflows `Int`, or when `scalars.count` is not the product of `shape`.
    public init(shape: [Int], scalars: [Float]) throws(NormKitError) {
        let count = try Shape.elementCount(shape)
        guard scalars.count == count else {
            throw .scalarCountMismatch(shape: shape, expected: count, actual: scalars.count)
        }
        _shape = shape
        _scalars = scalars
    }

    /// Creates a tensor of `shape` with every element `value`.
    ///
    /// - Precondition: `shape` is valid (rank >= 1, no negative dimension, no
    ///   overflowing product). Use ``init(validatingShape:repeating:)`` for a shape
    ///   that comes from data.
    public init(shape: [Int], repeating value: Float) {
        do {
            try self.init(validatingShape: shape, repeating: value)
        } catch {
            preconditionFailure("Tensor(shape:repeating:): \(error)")
        }
    }

    /// Creates a tensor of `shape` with every element `value`, throwing on an invalid shape.
    public init(validatingShape shape: [Int], repeating value: Float) throws(NormKitError) {
        let count = try Shape.elementCount(shape)
        _shape = shape
        _scalars = [Float](repeating: value, count: count)
    }

    /// Creates a tensor whose `count` scalars are written by `initializer`, which
    /// must initialise all of them. Used by kernels that write their output once, and by
    /// NormKitIO's readers (package access: no public API).
    @usableFromInline
    package init(
        uncheckedShape shape: [Int], count: Int,
        initializingWith initializer: (UnsafeMutableBufferPointer<Float>) throws -> Void
    ) rethrows {
        _shape = shape
        guard count > 0 else {
            // No scalars: the shared empty storage, untouched. (Array's
            // unsafeUninitializedCapacity initialiser writes the count even at capacity 0,
            // into that process-wide singleton, which ThreadSanitizer reports as a race
            // between threads that each make an empty tensor.)
            // The initializer still runs (on an empty buffer with a valid base address), so
            // its other effects, such as per-row statistics of zero rows, are as for any count.
            try withUnsafeTemporaryAllocation(of: Float.self, capacity: 1) { scratch in
                try initializer(UnsafeMutableBufferPointer(rebasing: scratch[0..<0]))
            }
            _scalars = []
            return
        }
        _scalars = try [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            try initializer(buffer)
            initialized = count
        }
    }

    /// A tensor of zeros. Same precondition as ``init(shape:repeating:)``.
    public static func zeros(_ shape: [Int]) -> Tensor { Tensor(shape: shape, repeating: 0) }

    /// A tensor of ones. Same precondition as ``init(shape:repeating:)``.
    public static func ones(_ shape: [Int]) -> Tensor { Tensor(shape: shape, repeating: 1) }

    /// Calls `body` with the scalars' contiguous storage.
    @inlinable
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try _scalars.withUnsafeBufferPointer(body)
    }

    /// Calls `body` with the scalars' contiguous, uniquely owned storage (copying
    /// it first if another tensor shares it). The shape cannot change.
    @inlinable
    public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (inout UnsafeMutableBufferPointer<Float>) throws -> R
    ) rethrows -> R {
        try _scalars.withUnsafeMutableBufferPointer { buffer in
            let base = buffer.baseAddress
            let count = buffer.count
            let result = try body(&buffer)
            precondition(buffer.baseAddress == base && buffer.count == count,
                         "withUnsafeMutableBufferPointer: the buffer must not be replaced")
            return result
        }
    }

    /// The same scalars under another shape with the same element count.
    ///
    /// - Throws: ``NormKitError`` for an invalid shape or a different element count.
    public func reshaped(to newShape: [Int]) throws(NormKitError) -> Tensor {
        let count = try Shape.elementCount(newShape)
        guard count == scalarCount else { throw .reshapeMismatch(from: _shape, to: newShape) }
        var copy = self
        copy._shape = newShape
        return copy
    }

    /// The element at a multi-dimensional index, or `nil` when the index has the
    /// wrong rank or is out of bounds.
    public func scalar(at index: [Int]) -> Float? {
        guard index.count == _shape.count else { return nil }
        var offset = 0
        for (i, d) in zip(index, _shape) {
            guard i >= 0 && i < d else { return nil }
            offset = offset * d + i
        }
        return _scalars[offset]
    }
}
