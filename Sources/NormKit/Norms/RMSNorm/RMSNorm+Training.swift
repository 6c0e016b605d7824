extension RMSNorm {
    /// What forward saves for backward: each row's `1/sqrt(mean(x²) + eps)`.
    ///
    /// Kept in `Double` (a row of 1e30·randn has an rrms near 1e-30, and one of
    /// 1e-25·randn one near 1e3: both fine in Double, and backward rebuilds
    /// x̂ = x·rrms from it). ``rrms`` gives a float copy for interop.
    public struct Statistics: Sendable, Equatable {
        /// The shape of the input these statistics describe; backward checks it.
        public let inputShape: [Int]
        /// Each row's `1/sqrt(mean(x²) + eps)`, one per row of the input (row-major over
        /// the leading dimensions); NaN for a row that held NaN or infinity.
        public let reciprocalRootMeanSquares: [Double]

        /// Statistics from values computed elsewhere (for example a saved training state).
        ///
        /// - Parameters:
        ///   - inputShape: the shape of the input they describe (rank >= 1).
        ///   - reciprocalRootMeanSquares: one `1/sqrt(mean(x²) + eps)` per row.
        /// - Throws: ``NormKitError`` for an invalid shape or a wrong number of values.
        public init(inputShape: [Int], reciprocalRootMeanSquares: [Double]) throws(NormKitError) {
            let rows = try NormValidation.rowCount(inputShape: inputShape)
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
        /// with the last dimension 1 (PyTorch's `rsqrt(mean(x²) + eps)`, keepdim).
        public var rrms: Tensor {
            var shape = inputShape
            shape[shape.count - 1] = 1
            let values = reciprocalRootMeanSquares
            return Tensor(uncheckedShape: shape, count: values.count) { out in
                for i in values.indices { out[i] = Float(values[i]) }
            }
        }
    }

    /// The gradients of a loss with respect to an RMSNorm's input and weight.
    public struct Gradients: Sendable, Equatable {
        /// ∂loss/∂input, shaped like the input.
        public var input: Tensor
        /// ∂loss/∂weight, `[dim]`.
        public var weight: Tensor

        /// Gradients from their two tensors.
        public init(input: Tensor, weight: Tensor) {
            self.input = input
            self.weight = weight
        }
    }

    /// Normalises `input` like ``forward(_:)`` and also returns the per-row statistics
    /// that ``backward(outputGradient:input:statistics:)`` needs. `output` is bitwise
    /// the same as ``forward(_:)``'s.
    ///
    /// - Throws: as ``forward(_:)``.
    public func forwardForTraining(_ input: Tensor) throws(NormKitError) -> (output: Tensor, statistics: Statistics) {
        let rows = try validate(input: input.shape)
        var rrms = [Double](repeating: 0, count: rows)
        let output = Tensor(uncheckedShape: input.shape, count: input.scalarCount) { out in
            input.withUnsafeBufferPointer { x in
                rrms.withUnsafeMutableBufferPointer { r in
                    run(x: x.baseAddress, y: out.baseAddress, rows: rows, rrms: r.baseAddress)
                }
            }
        }
        return (output, Statistics(uncheckedInputShape: input.shape, reciprocalRootMeanSquares: rrms))
    }

    /// The gradients of a loss with respect to this layer's input and weight, given
    /// the gradient with respect to its output.
    ///
    /// With r = rrms, x̂ = x·r and g = outputGradient ⊙ (weightOffset + weight), per row:
    ///
    ///     input  = r·(g - x̂·mean(g·x̂))
    ///     weight = Σ_rows outputGradient ⊙ x̂
    ///
    /// computed in `Double` from the float inputs and rounded once. Each is within
    /// 1e-5 of a float64 computation relative to `max(1, max|expected|)` (per row for
    /// `input`, over the whole tensor for `weight`), and bitwise the same for every
    /// thread count. A row whose input held NaN or infinity gets a NaN input
    /// gradient and makes the weight gradient NaN. The results are fresh tensors; to
    /// add into existing ones use ``backward(outputGradient:input:statistics:accumulatingInto:)``.
    ///
    /// - Throws: ``NormKitError`` when `input`'s last dimension is not ``dim``,
    ///   ``weight`` has the wrong shape, or `outputGradient` or the statistics' input
    ///   shape differs from `input`'s shape.
    public func backward(outputGradient: Tensor, input: Tensor, statistics: Statistics) throws(NormKitError) -> Gradients {
        let rows = try validateBackward(outputGradient: outputGradient, input: input, statistics: statistics)
        var sums = [Double](repeating: 0, count: dim)
        let dx = Tensor(uncheckedShape: input.shape, count: input.scalarCount) { dx in
            runBackward(outputGradient: outputGradient, input: input, statistics: statistics, rows: rows,
                        dx: dx.baseAddress, accumulate: false, weightSums: &sums)
        }
        return Gradients(input: dx, weight: LayerNorm.gradient(sums, adding: nil))
    }

    /// Like ``backward(outputGradient:input:statistics:)``, but adds into `gradients`:
    /// `gradients.input += ∂loss/∂input` (each element the float sum of the old value
    /// and the gradient ``backward(outputGradient:input:statistics:)`` returns: what a
    /// residual stream needs) and `gradients.weight += ∂loss/∂weight` (added in Double
    /// and rounded once: gradient accumulation over micro-batches).
    ///
    /// - Throws: as ``backward(outputGradient:input:statistics:)``, and when a tensor
    ///   of `gradients` has the wrong shape (then nothing is changed).
    public func backward(
        outputGradient: Tensor, input: Tensor, statistics: Statistics, accumulatingInto gradients: inout Gradients
    ) throws(NormKitError) {
        let rows = try validateBackward(outputGradient: outputGradient, input: input, statistics: statistics)
        guard gradients.input.shape == input.shape else {
            throw .shapeMismatch(name: "gradients.input", expected: input.shape, actual: gradients.input.shape)
        }
        guard gradients.weight.shape == [dim] else {
            throw .shapeMismatch(name: "gradients.weight", expected: [dim], actual: gradients.weight.shape)
        }
        var sums = [Double](repeating: 0, count: dim)
        gradients.input.withUnsafeMutableBufferPointer { dx in
            runBackward(outputGradient: outputGradient, input: input, statistics: statistics, rows: rows,
                        dx: dx.baseAddress, accumulate: true, weightSums: &sums)
        }
        gradients.weight = LayerNorm.gradient(sums, adding: gradients.weight)
    }

    /// Zero gradients to accumulate into: `input` of `inputShape`, `weight` `[dim]`.
    ///
    /// - Throws: ``NormKitError`` for an invalid shape.
    public func zeroGradients(inputShape: [Int]) throws(NormKitError) -> Gradients {
        Gradients(input: try Tensor(validatingShape: inputShape, repeating: 0), weight: Tensor.zeros([dim]))
    }

    func validateBackward(outputGradient: Tensor, input: Tensor, statistics: Statistics) throws(NormKitError) -> Int {
        let rows = try validate(input: input.shape)
        try NormValidation.backward(outputGradient: outputGradient.shape, input: input.shape,
                                    statistics: statistics.inputShape)
        return rows
    }

    /// Runs the backward kernel over fixed blocks of rows (on several threads for big
    /// inputs), then adds the blocks' weight partials in block order into `weightSums`.
    func runBackward(
        outputGradient: Tensor, input: Tensor, statistics: Statistics, rows: Int,
        dx: UnsafeMutablePointer<Float>?, accumulate: Bool, weightSums: inout [Double]
    ) {
        guard rows > 0, let dx else { return }
        let n = dim
        let blocks = RMSBackwardKernel.blockCount(rows: rows)
        let partials = UnsafeMutablePointer<Double>.allocate(capacity: blocks &* n)
        defer { partials.deallocate() }
        input.withUnsafeBufferPointer { x in
            outputGradient.withUnsafeBufferPointer { dy in
                statistics.reciprocalRootMeanSquares.withUnsafeBufferPointer { r in
                    weight.withUnsafeBufferPointer { w in
                        var job = RMSBackwardJob(
                            dim: n, rows: rows, x: x.baseAddress!, dy: dy.baseAddress!, dx: dx, accumulate: accumulate,
                            rrms: r.baseAddress!, weight: w.baseAddress!, offset: weightOffset, partials: partials,
                            kernels: Kernels.rmsNorm)
                        let threads = RowDriver.workers(rows: rows, dim: n)
                        withUnsafeMutablePointer(to: &job) { job in
                            RowParallel.forEachBlock(rows: blocks, blockSize: 1, threads: threads, context: job) { job, start, end, _ in
                                let j = job.assumingMemoryBound(to: RMSBackwardJob.self).pointee
                                for b in start ..< end { j.run(block: b) }
                            }
                        }
                    }
                }
            }
        }
        weightSums.withUnsafeMutableBufferPointer { s in
            for b in 0..<blocks {
                let p = partials + b &* n
                for j in 0..<n { s[j] += p[j] }
            }
        }
    }
}
