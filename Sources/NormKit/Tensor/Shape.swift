/// Shape arithmetic shared by ``Tensor``, the layers and NormKitIO's readers (package
/// access: no public API).
package enum Shape {
    /// The most elements a tensor may hold: 2^45 floats are 128 TiB, the whole of a
    /// 64-bit process's user address space on x86-64 and arm64. A larger shape cannot
    /// be allocated anywhere, so it throws instead of trapping inside the allocator.
    package static let maxElementCount = 1 << 45

    /// The element count of `shape`, or the error that makes it invalid: rank 0, a
    /// negative dimension, a product that overflows `Int`, or one that no process can
    /// hold. A shape with a zero dimension holds zero elements whatever its other
    /// dimensions are (`[2, 2^62, 0]` and `[0, 2, 2^62]` alike).
    package static func elementCount(_ shape: [Int]) throws(NormKitError) -> Int {
        if shape.isEmpty { throw .emptyShape }
        if shape.contains(where: { $0 < 0 }) { throw .negativeDimension(shape: shape) }
        if shape.contains(0) { return 0 }
        guard let count = product(shape) else { throw .shapeOverflow(shape: shape) }
        if count > maxElementCount { throw .tooLarge(shape: shape, elementCount: count) }
        return count
    }

    /// The product of `dimensions`, or nil when it overflows `Int`: the one checked
    /// multiplication behind every element and row count (``elementCount(_:)``, the
    /// layers' row counts, the file readers' header checks, error messages). A zero
    /// dimension anywhere makes the product 0 whatever the other dimensions are, so the
    /// answer does not depend on their order (`[2^62, 2^62, 0]` is 0, as `[0, 2^62, 2^62]`
    /// is); without a zero, nil as soon as a partial product overflows.
    package static func product(_ dimensions: some Sequence<Int>) -> Int? {
        var count = 1
        var overflowed = false
        for d in dimensions {
            if d == 0 { return 0 }
            guard !overflowed else { continue }
            let (p, overflow) = count.multipliedReportingOverflow(by: d)
            if overflow { overflowed = true } else { count = p }
        }
        return overflowed ? nil : count
    }
}
