/// Shape arithmetic shared by ``Tensor`` and the layers.
enum Shape {
    /// The element count of `shape`, or the error that makes it invalid:
    /// rank 0, a negative dimension, or a product that overflows `Int`.
    static func elementCount(_ shape: [Int]) throws(NormKitError) -> Int {
        if shape.isEmpty { throw .emptyShape }
        var count = 1
        for d in shape where d < 0 { _ = d; throw .negativeDimension(shape: shape) }
        for d in shape {
            let (p, overflow) = count.multipliedReportingOverflow(by: d)
            if overflow { throw .shapeOverflow(shape: shape) }
            count = p
        }
        return count
    }
}
