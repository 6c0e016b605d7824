extension Tensor: CustomStringConvertible, CustomDebugStringConvertible {
    /// A PyTorch-like summary: nested brackets, at most three values at each end
    /// of a long axis, then the shape. `Tensor([[1, 2], [3, 4]], shape: [2, 2])`.
    public var description: String {
        var out = "Tensor("
        if scalarCount == 0 {
            out += "[]"
        } else {
            let summarize = scalarCount > 1000
            Self.appendNested(&out, scalars: _scalars, shape: _shape, axis: 0, offset: 0,
                              summarize: summarize, indent: 7)
        }
        out += ", shape: \(_shape))"
        return out
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

    private static func appendNested(
        _ out: inout String, scalars: [Float], shape: [Int], axis: Int, offset: Int,
        summarize: Bool, indent: Int
    ) {
        let n = shape[axis]
        let stride = strides(shape)[axis]
        var indices = Array(0..<n)
        var gap = false
        if summarize && n > 2 * edgeItems {
            indices = Array(0..<edgeItems) + Array((n - edgeItems)..<n)
            gap = true
        }
        out += "["
        for (k, i) in indices.enumerated() {
            if k > 0 {
                if axis == shape.count - 1 {
                    out += ", "
                } else {
                    out += ",\n" + String(repeating: " ", count: indent + axis + 1)
                }
            }
            if gap && k == edgeItems {
                out += axis == shape.count - 1 ? "..., " : "...,\n" + String(repeating: " ", count: indent + axis + 1)
            }
            if axis == shape.count - 1 {
                out += format(scalars[offset + i * stride])
            } else {
                appendNested(&out, scalars: scalars, shape: shape, axis: axis + 1,
                             offset: offset + i * stride, summarize: summarize, indent: indent)
            }
        }
        out += "]"
    }
}
