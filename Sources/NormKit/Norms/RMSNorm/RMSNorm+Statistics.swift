extension RMSNorm {
    /// What forward saves for backward: each row's `1/sqrt(mean(x²) + eps)`.
    ///
    /// Kept in `Double` (a row of 1e30·randn has an rrms near 1e-30, and one of
    /// 1e-25·randn one near 1e3: both fine in Double, and backward rebuilds
    /// x̂ = x·rrms from it). ``rrms`` gives a float copy for interop.
    public struct Statistics: NormalizationStatistics {
        /// The shape of the input these statistics describe; backward checks it.
        public let inputShape: [Int]
        /// Each row's `1/sqrt(mean(x²) + eps)`, one per row of the input (row-major over
        /// the leading dimensions); NaN for a row that held NaN or infinity.
        public let reciprocalRootMeanSquares: [Double]

        /// Statistics from values computed elsewhere (for example a saved training state).
        ///
        /// - Parameters:
        ///   - inputShape: the shape of the input they describe (rank >= 1).
        ///   - normalizedRank: the number of trailing dimensions the layer normalises
        ///     (the count of its `normalizedShape`; 1 for a layer made with `dim:`).
        ///   - reciprocalRootMeanSquares: one `1/sqrt(mean(x²) + eps)` per row.
        /// - Throws: ``NormKitError`` for an invalid shape or a wrong number of values.
        public init(inputShape: [Int], normalizedRank: Int = 1, reciprocalRootMeanSquares: [Double]) throws(NormKitError) {
            let rows = try NormValidation.rowCount(inputShape: inputShape, normalizedRank: normalizedRank)
            try NormValidation.perRow("reciprocalRootMeanSquares", count: reciprocalRootMeanSquares.count,
                                      rows: rows, inputShape: inputShape)
            self.inputShape = inputShape
            self.reciprocalRootMeanSquares = reciprocalRootMeanSquares
        }

        init(uncheckedInputShape shape: [Int], reciprocalRootMeanSquares: [Double]) {
            inputShape = shape
            self.reciprocalRootMeanSquares = reciprocalRootMeanSquares
        }

        /// The number of rows (the product of the input's leading dimensions).
        public var rowCount: Int { reciprocalRootMeanSquares.count }

        /// The reciprocal root mean squares rounded to `Float`, shaped like the input
        /// with the normalised dimensions 1 (PyTorch's `rsqrt(mean(x²) + eps)`, keepdim).
        public var rrms: Tensor { Tensor(perRowValues: reciprocalRootMeanSquares, inputShape: inputShape) }

        public static var _hasMeans: Bool { false }

        public init(_uncheckedInputShape shape: [Int], means: [Double], scales: [Double]) {
            self.init(uncheckedInputShape: shape, reciprocalRootMeanSquares: scales)
        }

        public func _withRows<R>(_ body: (UnsafePointer<Double>?, UnsafePointer<Double>?) -> R) -> R {
            reciprocalRootMeanSquares.withUnsafeBufferPointer { body(nil, $0.baseAddress) }
        }
    }

    /// The gradients of a loss with respect to an RMSNorm's input and weight.
    public struct Gradients: NormalizationGradients {
        /// ∂loss/∂input, shaped like the input.
        public var input: Tensor
        /// ∂loss/∂weight, shaped like ``RMSNorm/weight``.
        public var weight: Tensor

        /// Gradients from their two tensors.
        public init(input: Tensor, weight: Tensor) {
            self.input = input
            self.weight = weight
        }

        public init(_input input: Tensor, weight: Tensor, bias: Tensor) {
            self.init(input: input, weight: weight)
        }

        public mutating func _withBias<R>(_ body: (inout Tensor) -> R) -> R? { nil }
    }
}
