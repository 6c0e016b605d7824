extension LayerNorm {
    /// What forward saves for backward: each row's mean and reciprocal standard
    /// deviation `1/sqrt(var + eps)`, as PyTorch, llm.c and ONNX save them.
    ///
    /// Kept in `Double`: backward rebuilds x̂ = (x - mean)·rstd from them, and a float
    /// mean of values near 1e6 is off by up to 0.03, which alone would cost the input
    /// gradient two digits. ``mean`` and ``rstd`` give float copies for interop.
    public struct Statistics: NormalizationStatistics {
        /// The shape of the input these statistics describe; backward checks it.
        public let inputShape: [Int]
        /// Each row's mean, one per row of the input (row-major over the leading dimensions).
        public let means: [Double]
        /// Each row's `1/sqrt(var + eps)`, one per row.
        public let reciprocalStandardDeviations: [Double]

        /// Statistics from values computed elsewhere (for example a saved training state).
        ///
        /// - Parameters:
        ///   - inputShape: the shape of the input they describe (rank >= 1).
        ///   - normalizedRank: the number of trailing dimensions the layer normalises
        ///     (the count of its `normalizedShape`; 1 for a layer made with `dim:`).
        ///   - means: one mean per row (the product of the other dimensions).
        ///   - reciprocalStandardDeviations: one `1/sqrt(var + eps)` per row.
        /// - Throws: ``NormKitError`` for an invalid shape or a wrong number of values.
        public init(
            inputShape: [Int], normalizedRank: Int = 1, means: [Double], reciprocalStandardDeviations: [Double]
        ) throws(NormKitError) {
            let rows = try NormValidation.rowCount(inputShape: inputShape, normalizedRank: normalizedRank)
            try NormValidation.perRow("means", count: means.count, rows: rows, inputShape: inputShape)
            try NormValidation.perRow("reciprocalStandardDeviations", count: reciprocalStandardDeviations.count,
                                      rows: rows, inputShape: inputShape)
            self.inputShape = inputShape
            self.means = means
            self.reciprocalStandardDeviations = reciprocalStandardDeviations
        }

        init(uncheckedInputShape shape: [Int], means: [Double], reciprocalStandardDeviations: [Double]) {
            inputShape = shape
            self.means = means
            self.reciprocalStandardDeviations = reciprocalStandardDeviations
        }

        /// The number of rows (the product of the input's leading dimensions).
        public var rowCount: Int { means.count }

        public static var _hasMeans: Bool { true }

        public init(_uncheckedInputShape shape: [Int], means: [Double], scales: [Double]) {
            self.init(uncheckedInputShape: shape, means: means, reciprocalStandardDeviations: scales)
        }

        public func _withRows<R>(_ body: (UnsafePointer<Double>?, UnsafePointer<Double>?) -> R) -> R {
            means.withUnsafeBufferPointer { m in
                reciprocalStandardDeviations.withUnsafeBufferPointer { r in body(m.baseAddress, r.baseAddress) }
            }
        }

        /// The means rounded to `Float`, shaped like the input with the normalised
        /// dimensions 1 (as PyTorch's `native_layer_norm` and ONNX return them). Not exact enough to
        /// rebuild x̂ for rows with a large mean; backward uses ``means``.
        public var mean: Tensor { floatTensor(means) }

        /// The reciprocal standard deviations rounded to `Float`, shaped like ``mean``.
        public var rstd: Tensor { floatTensor(reciprocalStandardDeviations) }

        private func floatTensor(_ values: [Double]) -> Tensor {
            Tensor(perRowValues: values, inputShape: inputShape)
        }
    }

    /// The gradients of a loss with respect to a LayerNorm's input and parameters.
    ///
    /// A layer without elementwise affine parameters has no weight and no bias, and a
    /// layer built with `bias: false` has no bias: the gradient of a parameter the layer
    /// does not have is an empty tensor of shape `[0]` (not zeros), so using it where a
    /// `[dim]` gradient is expected fails loudly instead of silently doing nothing.
    public struct Gradients: NormalizationGradients {
        /// ∂loss/∂input, shaped like the input.
        public var input: Tensor
        /// ∂loss/∂weight, `[dim]` (or `[0]` for a layer without weight).
        public var weight: Tensor
        /// ∂loss/∂bias, `[dim]` (or `[0]` for a layer without bias).
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
