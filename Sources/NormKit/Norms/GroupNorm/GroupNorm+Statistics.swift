extension GroupNorm {
    /// What forward saves for backward: each (sample, group)'s mean and reciprocal
    /// standard deviation `1/sqrt(var + eps)`, in `Double` (as ``LayerNorm/Statistics``).
    public struct Statistics: NormalizationStatistics {
        /// The shape of the input these statistics describe; backward checks it.
        public let inputShape: [Int]
        /// Each (sample, group)'s mean, sample-major: `N × groups` values.
        public let means: [Double]
        /// Each (sample, group)'s `1/sqrt(var + eps)`, in the same order.
        public let reciprocalStandardDeviations: [Double]

        /// Statistics from values computed elsewhere (for example a saved training state).
        ///
        /// - Parameters:
        ///   - inputShape: the shape of the input they describe, `[N, C, *spatial]`.
        ///   - groups: the layer's group count.
        ///   - means: `N × groups` means.
        ///   - reciprocalStandardDeviations: `N × groups` values of `1/sqrt(var + eps)`.
        /// - Throws: ``NormKitError`` for an invalid shape or a wrong number of values.
        public init(inputShape: [Int], groups: Int, means: [Double], reciprocalStandardDeviations: [Double]) throws(NormKitError) {
            _ = try Shape.elementCount(inputShape)
            guard groups >= 1 else { throw .invalidArgument(name: "groups", expected: "at least 1", actual: "\(groups)") }
            guard let rows = Shape.product([inputShape[0], groups]) else { throw .shapeOverflow(shape: inputShape) }
            try NormValidation.perRow("means", count: means.count, rows: rows, inputShape: inputShape)
            try NormValidation.perRow("reciprocalStandardDeviations", count: reciprocalStandardDeviations.count,
                                      rows: rows, inputShape: inputShape)
            self.init(_uncheckedInputShape: inputShape, means: means, scales: reciprocalStandardDeviations)
        }

        public init(_uncheckedInputShape shape: [Int], means: [Double], scales: [Double]) {
            inputShape = shape
            self.means = means
            self.reciprocalStandardDeviations = scales
        }

        /// The number of (sample, group) rows.
        public var rowCount: Int { means.count }

        /// The means rounded to `Float`, shaped `[N, groups]` (PyTorch's `native_group_norm`).
        public var mean: Tensor { floatTensor(means) }

        /// The reciprocal standard deviations rounded to `Float`, shaped `[N, groups]`.
        public var rstd: Tensor { floatTensor(reciprocalStandardDeviations) }

        private func floatTensor(_ values: [Double]) -> Tensor {
            let n = inputShape[0]
            return Tensor(uncheckedShape: [n, n == 0 ? 0 : values.count / n], count: values.count) { out in
                for i in values.indices { out[i] = Float(values[i]) }
            }
        }

        public static var _hasMeans: Bool { true }

        public func _withRows<R>(_ body: (UnsafePointer<Double>?, UnsafePointer<Double>?) -> R) -> R {
            means.withUnsafeBufferPointer { m in
                reciprocalStandardDeviations.withUnsafeBufferPointer { r in body(m.baseAddress, r.baseAddress) }
            }
        }
    }

    /// The gradients of a loss with respect to a GroupNorm's input, weight and bias.
    /// A layer without affine parameters gets `[0]` weight and bias gradients.
    public struct Gradients: NormalizationGradients {
        /// ∂loss/∂input, shaped like the input.
        public var input: Tensor
        /// ∂loss/∂weight, `[channels]` (or `[0]` for a layer without affine parameters).
        public var weight: Tensor
        /// ∂loss/∂bias, `[channels]` (or `[0]`).
        public var bias: Tensor

        /// Gradients from their three tensors.
        public init(input: Tensor, weight: Tensor, bias: Tensor) {
            self.input = input
            self.weight = weight
            self.bias = bias
        }

        public init(_input input: Tensor, weight: Tensor, bias: Tensor) {
            self.init(input: input, weight: weight, bias: bias)
        }

        public mutating func _withBias<R>(_ body: (inout Tensor) -> R) -> R? { body(&bias) }
    }
}
