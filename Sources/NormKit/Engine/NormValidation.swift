// The checks every norm shares: one wording of each error, whichever norm throws it.

enum NormValidation {
    /// The row count of an input of `shape` for a layer of size `dim`, or the error
    /// that makes it unusable (its last dimension is not `dim`).
    @inline(__always)
    static func rows(of shape: [Int], dim: Int) throws(NormKitError) -> Int {
        guard let last = shape.last, last == dim else {
            throw .inputShapeMismatch(expectedLastDimension: dim, actual: shape)
        }
        var rows = 1
        for d in shape.dropLast() { rows &*= d }  // cannot overflow: a Tensor's shape product fits
        return rows
    }

    /// The row count of an input of `shape` for a layer over the trailing dimensions
    /// `normalizedShape` (`dim` elements): the one-axis error for a one-axis layer.
    @inline(__always)
    static func rows(of shape: [Int], normalizedShape: [Int], dim: Int) throws(NormKitError) -> Int {
        if normalizedShape.count == 1 { return try rows(of: shape, dim: dim) }
        let k = normalizedShape.count
        guard shape.count >= k, shape.suffix(k).elementsEqual(normalizedShape) else {
            throw .shapeMismatch(name: "input's trailing dimensions", expected: normalizedShape, actual: shape)
        }
        var rows = 1
        for d in shape.dropLast(k) { rows &*= d }  // cannot overflow: a Tensor's shape product fits
        return rows
    }

    /// Checks that a layer parameter (weight, bias) still has the shape it was made
    /// with: they are assignable, so they are checked on every call.
    @inline(__always)
    static func parameter(_ name: String, _ tensor: Tensor, shape: [Int]) throws(NormKitError) {
        guard tensor.shape == shape else {
            throw .parameterShapeMismatch(name: name, expected: shape, actual: tensor.shape)
        }
    }

    /// Checks a gradient to write into: shaped like its parameter when the layer has
    /// it, else `[0]`.
    @inline(__always)
    static func gradient(_ name: String, _ actual: [Int], expected: [Int], present: Bool) throws(NormKitError) {
        if present {
            guard actual == expected else { throw .shapeMismatch(name: name, expected: expected, actual: actual) }
        } else {
            guard actual.count == 1 && actual[0] == 0 else { throw .shapeMismatch(name: name, expected: [0], actual: actual) }
        }
    }

    /// Checks a layer's `normalizedShape` and `eps` at init; returns the element count.
    static func normalizedShape(_ shape: [Int], eps: Float) throws(NormKitError) -> Int {
        if shape.isEmpty { throw .emptyShape }
        for d in shape { try layerSettings(dim: d, eps: eps) }
        return try Shape.elementCount(shape)
    }

    /// The row count of a valid `inputShape` (rank >= 1, product fits), for statistics
    /// built from saved values; throws for an invalid shape.
    static func rowCount(inputShape: [Int], normalizedRank: Int = 1) throws(NormKitError) -> Int {
        _ = try Shape.elementCount(inputShape)
        guard normalizedRank >= 1 && normalizedRank <= inputShape.count else {
            throw .invalidArgument(name: "normalizedRank", expected: "1...\(inputShape.count) (the rank of \(inputShape))",
                                   actual: "\(normalizedRank)")
        }
        // A zero dimension anywhere means an empty tensor and no rows, whatever the others
        // are and in whatever order, as in elementCount: `[3, 2^62, 0, 768]` (an empty
        // tensor forwardForTraining accepts) and `[2^62, 2^62, 0]` alike.
        if inputShape.contains(0) { return 0 }
        guard let rows = Shape.product(inputShape.dropLast(normalizedRank)) else { throw .shapeOverflow(shape: inputShape) }
        return rows
    }

    /// Checks that a saved-statistics array holds one value per row.
    static func perRow(_ name: String, count: Int, rows: Int, inputShape: [Int]) throws(NormKitError) {
        guard count == rows else {
            throw .invalidArgument(name: name, expected: "\(rows) values (one per row of \(inputShape))",
                                   actual: "\(count)")
        }
    }

    /// Checks backward's tensors against the input's shape.
    static func backward(outputGradient: [Int], input: [Int], statistics: [Int]) throws(NormKitError) {
        guard outputGradient == input else {
            throw .shapeMismatch(name: "outputGradient", expected: input, actual: outputGradient)
        }
        guard statistics == input else {
            throw .shapeMismatch(name: "statistics.inputShape", expected: input, actual: statistics)
        }
    }

    /// Checks the layer's `dim` and `eps` at init.
    static func layerSettings(dim: Int, eps: Float) throws(NormKitError) {
        guard dim >= 1 else { throw .invalidDimension(dim) }
        guard eps.isFinite && eps > 0 else { throw .invalidEpsilon(eps) }
    }

    /// Checks `output` for a forward into caller storage: the same shape as the input.
    @inline(__always)
    static func output(_ output: [Int], input: [Int]) throws(NormKitError) {
        guard output == input else {
            throw .shapeMismatch(name: "output", expected: input, actual: output)
        }
    }
}

extension NormValidation {
    /// The row count of a raw buffer of `count` floats for a layer of size `dim`.
    static func rows(ofCount count: Int, dim: Int, name: String) throws(NormKitError) -> Int {
        guard count % dim == 0 else {
            throw .invalidArgument(name: name, expected: "a multiple of dim \(dim) floats", actual: "\(count) floats")
        }
        return count / dim
    }

    /// Checks that buffer `name` holds `expected` floats (the input's count).
    static func count(_ name: String, _ count: Int, expected: Int) throws(NormKitError) {
        guard count == expected else {
            throw .invalidArgument(name: name, expected: "\(expected) floats (the input's count)", actual: "\(count) floats")
        }
    }

    /// Checks the aliasing rule of the raw-buffer entry points: two buffers of `count`
    /// floats are either the very same memory (in place) or do not overlap at all.
    static func noPartialOverlap(
        _ a: UnsafeRawPointer?, _ aName: String, _ b: UnsafeRawPointer?, _ bName: String, count: Int
    ) throws(NormKitError) {
        guard let a, let b, count > 0, a != b else { return }
        let bytes = count &* MemoryLayout<Float>.stride
        let lo = Int(bitPattern: a), hi = Int(bitPattern: b)
        let distance = hi > lo ? hi &- lo : lo &- hi
        if distance < bytes {
            throw .invalidArgument(
                name: "\(bName)", expected: "the same memory as \(aName) (in place) or memory disjoint from it",
                actual: "a buffer overlapping \(aName) by \((bytes - distance) / MemoryLayout<Float>.stride) of \(count) floats (\(bName) starts \(hi > lo ? "" : "-")\(distance) bytes after \(aName))")
        }
    }
}

extension NormValidation {
    /// Checks a fused call's residual against the input's shape.
    @inline(__always)
    static func residual(_ residual: [Int], input: [Int]) throws(NormKitError) {
        guard residual == input else {
            throw .shapeMismatch(name: "residual", expected: input, actual: residual)
        }
    }

    /// Checks the raw buffers of a fused call: counts (a multiple of `dim`, all equal)
    /// and the aliasing rule for each pair. Returns the row count.
    static func fusedBuffers(
        input: UnsafeBufferPointer<Float>, residual: UnsafeMutableBufferPointer<Float>,
        output: UnsafeMutableBufferPointer<Float>, dim: Int
    ) throws(NormKitError) -> Int {
        let rows = try rows(ofCount: input.count, dim: dim, name: "input")
        try count("residual", residual.count, expected: input.count)
        try count("output", output.count, expected: input.count)
        let i = UnsafeRawPointer(input.baseAddress), r = UnsafeRawPointer(residual.baseAddress)
        let o = UnsafeRawPointer(output.baseAddress)
        try noPartialOverlap(i, "input", r, "residual", count: input.count)
        try noPartialOverlap(i, "input", o, "output", count: input.count)
        try noPartialOverlap(r, "residual", o, "output", count: input.count)
        return rows
    }
}
