extension Tensor: CustomStringConvertible, CustomDebugStringConvertible {
    /// A PyTorch-like summary: nested brackets, at most three values at each end
    /// of a long axis, then the shape. `Tensor([[1, 2], [3, 4]], shape: [2, 2])`.
    ///
    /// Bounded whatever the tensor: built without recursion, values summarized beyond
    /// 1000 scalars, and a tensor of rank above 64 (NumPy's limit; only a hand-made shape
    /// has one) shown flat, its shape cut to the first and last 8 dimensions.
    public var description: String {
        var out = "Tensor("
        if scalarCount == 0 {
            out += "[]"
        } else if _shape.count > Self.maxNestedRank {
            out += "flat "
            Self.appendNested(&out, scalars: _scalars, shape: [scalarCount], summarize: scalarCount > 1000, indent: 7)
        } else {
            Self.appendNested(&out, scalars: _scalars, shape: _shape, summarize: scalarCount > 1000, indent: 7)
        }
        out += ", shape: \(Self.shapeText(_shape)))"
        return out
    }

    /// Ranks up to this are printed nested.
    private static let maxNestedRank = 64

    private static func shapeText(_ shape: [Int]) -> String {
        guard shape.count > 2 * 8 + 1, shape.count > maxNestedRank else { return "\(shape)" }
        let head = shape.prefix(8).map(String.init).joined(separator: ", ")
        let tail = shape.suffix(8).map(String.init).joined(separator: ", ")
        return "[\(head), ... \(shape.count - 16) more ..., \(tail)] (rank \(shape.count))"
    }

    public var debugDescription: String { description }

    private static let edgeItems = 3

    private static func strides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var s = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[i] = s
            s = s &* max(shape[i], 1)
        }
        return strides
    }

    private static func format(_ v: Float) -> String {
        if v.isNaN { return "nan" }
        if v.isInfinite { return v < 0 ? "-inf" : "inf" }
        if v == v.rounded(), abs(v) < 1e7 { return String(Int(v)) }
        return String(v)
    }

    /// Nested brackets, one axis per level, with an explicit stack instead of recursion
    /// (a rank-45 000 tensor overflowed the thread's stack).
    private static func appendNested(
        _ out: inout String, scalars: [Float], shape: [Int], summarize: Bool, indent: Int
    ) {
        let stride = strides(shape)
        let rank = shape.count
        // Which index the k-th printed entry of an axis of length n is, and how many are printed.
        func shown(_ n: Int) -> Int { summarize && n > 2 * edgeItems ? 2 * edgeItems : n }
        func index(_ k: Int, _ n: Int) -> Int { shown(n) < n && k >= edgeItems ? n - 2 * edgeItems + k : k }
        var stack: [(axis: Int, offset: Int, k: Int)] = [(0, 0, 0)]
        out += "["
        while let top = stack.last {
            let (axis, offset, k) = top
            let n = shape[axis]
            if k == shown(n) {
                out += "]"
                stack.removeLast()
                continue
            }
            stack[stack.count - 1].k = k + 1
            if k > 0 {
                out += axis == rank - 1 ? ", " : ",\n" + String(repeating: " ", count: indent + axis + 1)
            }
            if shown(n) < n && k == edgeItems {
                out += axis == rank - 1 ? "..., " : "...,\n" + String(repeating: " ", count: indent + axis + 1)
            }
            let i = index(k, n)
            if axis == rank - 1 {
                out += format(scalars[offset + i * stride[axis]])
            } else {
                out += "["
                stack.append((axis + 1, offset + i * stride[axis], 0))
            }
        }
    }
}
