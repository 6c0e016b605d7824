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
        var gradients = Gradients(
            input: Tensor(uncheckedShape: input.shape, count: input.scalarCount) { _ in },
            weight: Tensor.zeros([elementwiseAffine ? dim : 0]), bias: Tensor.zeros([usesBias ? dim : 0]))
        runBackward(outputGradient: outputGradient, input: input, statistics: statistics, rows: rows,
                    into: &gradients, accumulate: false)
        return gradients
    }

    /// Like ``backward(outputGradient:input:statistics:)``, but writes the gradients
    /// into `gradients` (overwriting them) instead of returning fresh ones. Allocates
    /// nothing when `gradients`' tensors are not shared with another value (then no
    /// copy-on-write happens) and this thread and the worker threads have made a call
    /// of this size before: the form for a training loop that reuses its buffers.
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
        outputGradient: Tensor, input: Tensor, statistics: Statistics, into gradients: inout Gradients
    ) throws(NormKitError) {
        let rows = try validateBackward(outputGradient: outputGradient, input: input, statistics: statistics)
        try validateGradientShapes(gradients, input: input)
        runBackward(outputGradient: outputGradient, input: input, statistics: statistics, rows: rows,
                    into: &gradients, accumulate: false)
    }

    /// Like ``backward(outputGradient:input:statistics:)``, but adds the gradients
    /// into `gradients` instead of returning fresh ones: `gradients.input += ∂loss/∂input`
    /// (what a residual stream needs) and the same for `weight` and `bias` (gradient
    /// accumulation over micro-batches). The weight and bias sums are added in
    /// `Double` and rounded once. Allocates nothing, as
    /// ``backward(outputGradient:input:statistics:into:)``.
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
        try validateGradientShapes(gradients, input: input)
        runBackward(outputGradient: outputGradient, input: input, statistics: statistics, rows: rows,
                    into: &gradients, accumulate: true)
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

    /// Checks the shapes of gradients to write or add into.
    func validateGradientShapes(_ gradients: Gradients, input: Tensor) throws(NormKitError) {
        guard gradients.input.shape == input.shape else {
            throw .shapeMismatch(name: "gradients.input", expected: input.shape, actual: gradients.input.shape)
        }
        // Compared without building the expected shapes: no array is allocated unless it throws.
        let weightCount = elementwiseAffine ? dim : 0, biasCount = usesBias ? dim : 0
        let w = gradients.weight.shape, b = gradients.bias.shape
        guard w.count == 1 && w[0] == weightCount else {
            throw .shapeMismatch(name: "gradients.weight", expected: [weightCount], actual: w)
        }
        guard b.count == 1 && b[0] == biasCount else {
            throw .shapeMismatch(name: "gradients.bias", expected: [biasCount], actual: b)
        }
    }

    /// The public calls' driver: runs the kernel over all rows on up to
    /// ``Parallelism/effectiveThreadCount`` threads (through RowParallel's allocation-free
    /// form; inputs too small to gain stay on the calling thread) and writes or adds
    /// the results into `gradients`, whose shapes were checked. Blocks are fixed and
    /// their partials are reduced in block order, so the gradients do not depend on the
    /// thread count. The Double sums live in this thread's `ThreadScratch.call` block,
    /// after the partials.
    func runBackward(outputGradient: Tensor, input: Tensor, statistics: Statistics, rows: Int,
                     into gradients: inout Gradients, accumulate: Bool) {
        guard rows > 0 else {
            if !accumulate {
                gradients.weight.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
                gradients.bias.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
            }
            return
        }
        let n = dim
        let workers = RowDriver.workers(rows: rows, dim: n)
        let wantWeight = elementwiseAffine, wantBias = usesBias
        _ = gradients.input.withUnsafeMutableBufferPointer { dx in
            withBackwardJob(outputGradient: outputGradient, input: input, statistics: statistics, rows: rows,
                            dx: dx.baseAddress!, accumulate: accumulate, weight: wantWeight, bias: wantBias,
) { job, blocks in
                if workers == 1 {
                    job.pointee.run(blocks: 0..<blocks)
                } else {
                    RowParallel.forEachBlock(rows: blocks, blockSize: 1, threads: workers, context: job) { job, start, end, _ in
                        job.assumingMemoryBound(to: BackwardJob.self).pointee.run(blocks: start ..< end)
                    }
                }
            } finish: { weightSums, biasSums in
                if let weightSums { gradients.weight.withUnsafeMutableBufferPointer { Self.store(weightSums, into: $0, adding: accumulate) } }
                if let biasSums { gradients.bias.withUnsafeMutableBufferPointer { Self.store(biasSums, into: $0, adding: accumulate) } }
            }
        }
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

    /// out[j] = Float(sums[j]), or Float(Double(out[j]) + sums[j]) when adding.
    static func store(_ sums: UnsafePointer<Double>, into out: UnsafeMutableBufferPointer<Float>, adding: Bool) {
        for j in out.indices { out[j] = adding ? Float(Double(out[j]) + sums[j]) : Float(sums[j]) }
    }

    /// Builds the job for all rows (partials and fallback counts in this thread's
    /// `ThreadScratch.call` block), lets `schedule` run its blocks, reduces the partials
    /// in block order into Double sums and hands them to `finish` (nil for a gradient
    /// not wanted). Returns how many rows took the Double fallback.
    @discardableResult
    func withBackwardJob(
        outputGradient: Tensor, input: Tensor, statistics: Statistics, rows: Int,
        dx: UnsafeMutablePointer<Float>, accumulate: Bool, weight wantWeight: Bool, bias wantBias: Bool,
        schedule: (UnsafeMutablePointer<BackwardJob>, Int) -> Void,
        finish: (UnsafePointer<Double>?, UnsafePointer<Double>?) -> Void
    ) -> Int {
        let n = dim
        let blocks = BackwardKernel.blockCount(rows: rows)
        // Layout: [partial weight: blocks·n floats][partial bias: blocks·n floats]
        //         [fallback counts: blocks Ints][weight sums: n doubles][bias sums: n doubles]
        let partialFloats = blocks &* n
        let floatBytes = 2 &* partialFloats &* MemoryLayout<Float>.stride
        let countsOffset = (floatBytes &+ 63) & ~63
        let sumsOffset = (countsOffset &+ blocks &* MemoryLayout<Int>.stride &+ 63) & ~63
        let raw = ThreadScratch.call.buffer(bytes: sumsOffset &+ 2 &* n &* MemoryLayout<Double>.stride)
        let partials = raw.bindMemory(to: Float.self, capacity: 2 &* partialFloats)
        let fallbacks = (raw + countsOffset).bindMemory(to: Int.self, capacity: blocks)
        let sums = (raw + sumsOffset).bindMemory(to: Double.self, capacity: 2 &* n)
        fallbacks.update(repeating: 0, count: blocks)
        let kernels = Kernels.layerNorm
        let w = elementwiseAffine ? weight : identityWeight
        input.withUnsafeBufferPointer { x in
            outputGradient.withUnsafeBufferPointer { dy in
                statistics.means.withUnsafeBufferPointer { mean in
                    statistics.reciprocalStandardDeviations.withUnsafeBufferPointer { rstd in
                        w.withUnsafeBufferPointer { wp in
                            var job = BackwardJob(
                                dim: n, rows: rows, eps: Double(eps),
                                x: x.baseAddress!, dy: dy.baseAddress!, dx: dx,
                                accumulate: accumulate, mean: mean.baseAddress!, rstd: rstd.baseAddress!,
                                weight: wp.baseAddress!, partialWeight: wantWeight ? partials : nil,
                                partialBias: wantBias ? partials + partialFloats : nil,
                                fallbackRows: fallbacks, kernels: kernels)
                            withUnsafeMutablePointer(to: &job) { schedule($0, blocks) }
                        }
                    }
                }
            }
        }
        if wantWeight { BackwardKernel.reduce(partials, blocks: blocks, dim: n, into: sums) }
        if wantBias { BackwardKernel.reduce(partials + partialFloats, blocks: blocks, dim: n, into: sums + n) }
        finish(wantWeight ? UnsafePointer(sums) : nil, wantBias ? UnsafePointer(sums + n) : nil)
        var total = 0
        for b in 0..<blocks { total &+= fallbacks[b] }
        return total
    }

    /// For tests: runs the kernel over all rows with `forEachBlockRange` choosing how
    /// blocks are scheduled, and returns how many rows took the Double fallback.
    ///
    /// `forEachBlockRange` is handed the block count and a `@Sendable` body, and must
    /// call the body on disjoint ranges covering `0..<blockCount`, in any order and on
    /// any threads: the results do not depend on how (blocks are fixed groups of
    /// `BackwardKernel.blockRows` rows). The public calls use ``runBackward(outputGradient:input:statistics:rows:into:accumulate:)``.
    @discardableResult
    func runBackward(
        outputGradient: Tensor, input: Tensor, statistics: Statistics, rows: Int,
        dx: UnsafeMutableBufferPointer<Float>, accumulate: Bool,
        weightSums: inout [Double]?, biasSums: inout [Double]?,
        forEachBlockRange: (Int, @escaping @Sendable (Range<Int>) -> Void) -> Void = { count, body in body(0..<count) }
    ) -> Int {
        guard rows > 0 else { return 0 }
        let n = dim
        var weightResult: [Double]? = nil, biasResult: [Double]? = nil
        let count = withBackwardJob(
            outputGradient: outputGradient, input: input, statistics: statistics, rows: rows,
            dx: dx.baseAddress!, accumulate: accumulate, weight: weightSums != nil, bias: biasSums != nil
        ) { job, blocks in
            let copy = job.pointee
            forEachBlockRange(blocks) { range in copy.run(blocks: range) }
        } finish: { w, b in
            weightResult = w.map { Array(UnsafeBufferPointer(start: $0, count: n)) }
            biasResult = b.map { Array(UnsafeBufferPointer(start: $0, count: n)) }
        }
        if weightSums != nil { weightSums = weightResult }
        if biasSums != nil { biasSums = biasResult }
        return count
    }
}
