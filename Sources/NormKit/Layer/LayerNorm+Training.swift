extension LayerNorm {
    /// What forward saves for backward: each row's mean and reciprocal standard
    /// deviation `1/sqrt(var + eps)`, as PyTorch, llm.c and ONNX save them.
    ///
    /// Kept in `Double`: backward rebuilds x̂ = (x - mean)·rstd from them, and a float
    /// mean of values near 1e6 is off by up to 0.03, which alone would cost the input
    /// gradient two digits. ``mean`` and ``rstd`` give float copies for interop.
    public struct Statistics: Sendable, Equatable {
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
        ///   - means: one mean per row (the product of the leading dimensions).
        ///   - reciprocalStandardDeviations: one `1/sqrt(var + eps)` per row.
        /// - Throws: ``NormKitError`` for an invalid shape or a wrong number of values.
        public init(inputShape: [Int], means: [Double], reciprocalStandardDeviations: [Double]) throws(NormKitError) {
            let rows = try NormValidation.rowCount(inputShape: inputShape)
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

        /// The means rounded to `Float`, shaped like the input with the last dimension 1
        /// (as PyTorch's `native_layer_norm` and ONNX return them). Not exact enough to
        /// rebuild x̂ for rows with a large mean; backward uses ``means``.
        public var mean: Tensor { floatTensor(means) }

        /// The reciprocal standard deviations rounded to `Float`, shaped like ``mean``.
        public var rstd: Tensor { floatTensor(reciprocalStandardDeviations) }

        private func floatTensor(_ values: [Double]) -> Tensor {
            var shape = inputShape
            shape[shape.count - 1] = 1
            return Tensor(uncheckedShape: shape, count: values.count) { out in
                for i in values.indices { out[i] = Float(values[i]) }
            }
        }
    }

    /// The gradients of a loss with respect to a LayerNorm's input and parameters.
    ///
    /// A layer without elementwise affine parameters has no weight and no bias, and a
    /// layer built with `bias: false` has no bias: the gradient of a parameter the layer
    /// does not have is an empty tensor of shape `[0]` (not zeros), so using it where a
    /// `[dim]` gradient is expected fails loudly instead of silently doing nothing.
    public struct Gradients: Sendable, Equatable {
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
    }

    /// Normalises `input` like ``forward(_:)`` and also returns the per-row statistics
    /// that ``backward(outputGradient:input:statistics:)`` needs.
    ///
    /// `output` is bitwise the same as ``forward(_:)``'s: the statistics come from the
    /// same kernel, in `Double`.
    ///
    /// - Throws: as ``forward(_:)``.
    public func forwardForTraining(_ input: Tensor) throws(NormKitError) -> (output: Tensor, statistics: Statistics) {
        let rows = try validate(input: input.shape)
        var means = [Double](repeating: 0, count: rows)
        var rstds = [Double](repeating: 0, count: rows)
        let output = Tensor(uncheckedShape: input.shape, count: input.scalarCount) { out in
            input.withUnsafeBufferPointer { x in
                means.withUnsafeMutableBufferPointer { m in
                    rstds.withUnsafeMutableBufferPointer { r in
                        runForward(x, out, rows: rows, mean: m.baseAddress, rstd: r.baseAddress)
                    }
                }
            }
        }
        return (output, Statistics(uncheckedInputShape: input.shape, means: means, reciprocalStandardDeviations: rstds))
    }

    /// The gradients of a loss with respect to this layer's input, weight and bias,
    /// given the gradient with respect to its output.
    ///
    /// With x̂ = (x - mean)·rstd and g = outputGradient ⊙ weight, per row:
    ///
    ///     input  = rstd·(g - mean(g) - x̂·mean(g·x̂))
    ///     weight = Σ_rows outputGradient ⊙ x̂
    ///     bias   = Σ_rows outputGradient
    ///
    /// The results are fresh tensors: nothing is accumulated into. (To add into
    /// existing gradients, as a residual stream or gradient accumulation does, use
    /// ``backward(outputGradient:input:statistics:accumulatingInto:)``.) Each is within
    /// 1e-5 of a float64 computation relative to `max(1, max|expected|)` (per row for
    /// `input`, over the whole tensor for `weight` and `bias`); the weight and bias
    /// gradients are bitwise reproducible, whatever the thread count. A row whose
    /// input held NaN or infinity gets a NaN input gradient, and makes the weight
    /// gradient NaN.
    ///
    /// - Parameters:
    ///   - outputGradient: ∂loss/∂output, the shape of `input`.
    ///   - input: the input that was given to ``forwardForTraining(_:)``.
    ///   - statistics: what ``forwardForTraining(_:)`` returned for that input.
    ///     Statistics of another tensor of the same shape are not detected.
    /// - Returns: the gradients; see ``Gradients`` for a layer without weight or bias.
    /// - Throws: ``NormKitError`` when `input`'s last dimension is not ``dim``,
    ///   ``weight`` or ``bias`` has the wrong shape, or `outputGradient` or the
    ///   statistics' input shape differs from `input`'s shape.
    public func backward(
        outputGradient: Tensor, input: Tensor, statistics: Statistics
    ) throws(NormKitError) -> Gradients {
        let rows = try validateBackward(outputGradient: outputGradient, input: input, statistics: statistics)
        var weightSums = elementwiseAffine ? [Double](repeating: 0, count: dim) : nil
        var biasSums = usesBias ? [Double](repeating: 0, count: dim) : nil
        let dx = Tensor(uncheckedShape: input.shape, count: input.scalarCount) { dx in
            runBackward(outputGradient: outputGradient, input: input, statistics: statistics, rows: rows,
                        dx: dx, accumulate: false, weightSums: &weightSums, biasSums: &biasSums,
                        forEachBlockRange: parallelBlockRanges(rows: rows))
        }
        return Gradients(input: dx, weight: Self.gradient(weightSums, adding: nil),
                         bias: Self.gradient(biasSums, adding: nil))
    }

    /// Like ``backward(outputGradient:input:statistics:)``, but adds the gradients
    /// into `gradients` instead of returning fresh ones: `gradients.input += ∂loss/∂input`
    /// (what a residual stream needs) and the same for `weight` and `bias` (gradient
    /// accumulation over micro-batches). The weight and bias sums are added in
    /// `Double` and rounded once.
    ///
    /// - Parameters:
    ///   - outputGradient: ∂loss/∂output, shaped like `input`.
    ///   - input: the input that was given to ``forwardForTraining(_:)``.
    ///   - statistics: what ``forwardForTraining(_:)`` returned for that input.
    ///   - gradients: `input` shaped like `input`; `weight` and `bias` `[dim]`, or `[0]`
    ///     where the layer has no such parameter (see ``zeroGradients(inputShape:)``).
    /// - Throws: as ``backward(outputGradient:input:statistics:)``, and when a tensor
    ///   of `gradients` has the wrong shape (then nothing is changed).
    public func backward(
        outputGradient: Tensor, input: Tensor, statistics: Statistics, accumulatingInto gradients: inout Gradients
    ) throws(NormKitError) {
        let rows = try validateBackward(outputGradient: outputGradient, input: input, statistics: statistics)
        guard gradients.input.shape == input.shape else {
            throw .shapeMismatch(name: "gradients.input", expected: input.shape, actual: gradients.input.shape)
        }
        let weightShape = elementwiseAffine ? [dim] : [0]
        guard gradients.weight.shape == weightShape else {
            throw .shapeMismatch(name: "gradients.weight", expected: weightShape, actual: gradients.weight.shape)
        }
        let biasShape = usesBias ? [dim] : [0]
        guard gradients.bias.shape == biasShape else {
            throw .shapeMismatch(name: "gradients.bias", expected: biasShape, actual: gradients.bias.shape)
        }
        var weightSums = elementwiseAffine ? [Double](repeating: 0, count: dim) : nil
        var biasSums = usesBias ? [Double](repeating: 0, count: dim) : nil
        _ = gradients.input.withUnsafeMutableBufferPointer { dx in
            runBackward(outputGradient: outputGradient, input: input, statistics: statistics, rows: rows,
                        dx: dx, accumulate: true, weightSums: &weightSums, biasSums: &biasSums,
                        forEachBlockRange: parallelBlockRanges(rows: rows))
        }
        gradients.weight = Self.gradient(weightSums, adding: gradients.weight)
        gradients.bias = Self.gradient(biasSums, adding: gradients.bias)
    }

    /// Zero gradients to accumulate into: `input` of `inputShape`, `weight` and `bias`
    /// `[dim]` (or `[0]` where the layer has no such parameter).
    ///
    /// - Throws: ``NormKitError`` for an invalid shape.
    public func zeroGradients(inputShape: [Int]) throws(NormKitError) -> Gradients {
        Gradients(input: try Tensor(validatingShape: inputShape, repeating: 0),
                  weight: Tensor.zeros([elementwiseAffine ? dim : 0]),
                  bias: Tensor.zeros([usesBias ? dim : 0]))
    }

    /// Checks backward's arguments; returns the row count.
    func validateBackward(outputGradient: Tensor, input: Tensor, statistics: Statistics) throws(NormKitError) -> Int {
        let rows = try validate(input: input.shape)
        try NormValidation.backward(outputGradient: outputGradient.shape, input: input.shape,
                                    statistics: statistics.inputShape)
        return rows
    }

    /// A `[dim]` Float gradient from Double sums (plus `existing`, added in Double), or
    /// `[0]` when the layer has no such parameter.
    static func gradient(_ sums: [Double]?, adding existing: Tensor?) -> Tensor {
        guard let sums else { return Tensor.zeros([0]) }
        return Tensor(uncheckedShape: [sums.count], count: sums.count) { out in
            if let existing {
                let e = existing.scalars
                for j in sums.indices { out[j] = Float(Double(e[j]) + sums[j]) }
            } else {
                for j in sums.indices { out[j] = Float(sums[j]) }
            }
        }
    }

    /// Backward's blocks on up to ``Parallelism/effectiveThreadCount`` threads, through
    /// `RowParallel` (one part per block of `BackwardKernel.blockRows` rows; inputs too
    /// small to gain stay on the calling thread). Blocks are fixed and their partials
    /// are reduced in block order, so the gradients do not depend on the thread count.
    func parallelBlockRanges(rows: Int) -> (Int, @escaping @Sendable (Range<Int>) -> Void) -> Void {
        let workers = RowParallel.workerCount(rows: rows, dim: dim, threads: .max) == 1 ? 1
            : RowParallel.workerCount(rows: rows, dim: dim, threads: Parallelism.effectiveThreadCount)
        return { count, body in
            RowParallel.forEachBlock(rows: count, blockSize: 1, threads: workers) { blocks, _ in body(blocks) }
        }
    }

    /// Runs the backward kernel over all rows; returns how many rows took the Double fallback.
    ///
    /// `forEachBlockRange` is handed the block count and a `@Sendable` body, and must
    /// call the body on disjoint ranges covering `0..<blockCount`, in any order and on
    /// any threads: the results do not depend on how (blocks are fixed groups of
    /// `BackwardKernel.blockRows` rows). The public calls pass
    /// ``parallelBlockRanges(rows:)``; the default, one serial call over all blocks, is
    /// for tests that compare the two.
    @discardableResult
    func runBackward(
        outputGradient: Tensor, input: Tensor, statistics: Statistics, rows: Int,
        dx: UnsafeMutableBufferPointer<Float>, accumulate: Bool,
        weightSums: inout [Double]?, biasSums: inout [Double]?,
        forEachBlockRange: (Int, @escaping @Sendable (Range<Int>) -> Void) -> Void = { count, body in body(0..<count) }
    ) -> Int {
        guard rows > 0 else { return 0 }
        let n = dim
        let blocks = BackwardKernel.blockCount(rows: rows)
        let w = elementwiseAffine ? weight : identityWeight
        let partialWeight: UnsafeMutablePointer<Float>? =
            weightSums == nil ? nil : .allocate(capacity: blocks &* n)
        let partialBias: UnsafeMutablePointer<Float>? =
            biasSums == nil ? nil : .allocate(capacity: blocks &* n)
        let fallbacks = UnsafeMutablePointer<Int>.allocate(capacity: blocks)
        defer {
            partialWeight?.deallocate()
            partialBias?.deallocate()
            fallbacks.deallocate()
        }
        fallbacks.initialize(repeating: 0, count: blocks)
        input.withUnsafeBufferPointer { x in
            outputGradient.withUnsafeBufferPointer { dy in
                statistics.means.withUnsafeBufferPointer { mean in
                    statistics.reciprocalStandardDeviations.withUnsafeBufferPointer { rstd in
                        w.withUnsafeBufferPointer { wp in
                            let job = BackwardJob(
                                dim: n, rows: rows, eps: Double(eps),
                                x: x.baseAddress!, dy: dy.baseAddress!, dx: dx.baseAddress!,
                                accumulate: accumulate, mean: mean.baseAddress!, rstd: rstd.baseAddress!,
                                weight: wp.baseAddress!, partialWeight: partialWeight, partialBias: partialBias,
                                fallbackRows: fallbacks)
                            forEachBlockRange(blocks) { range in job.run(blocks: range) }
                        }
                    }
                }
            }
        }
        if let partialWeight { weightSums!.withUnsafeMutableBufferPointer { s in
            BackwardKernel.reduce(partialWeight, blocks: blocks, dim: n, into: s.baseAddress!)
        } }
        if let partialBias { biasSums!.withUnsafeMutableBufferPointer { s in
            BackwardKernel.reduce(partialBias, blocks: blocks, dim: n, into: s.baseAddress!)
        } }
        var total = 0
        for b in 0..<blocks { total &+= fallbacks[b] }
        return total
    }
}
