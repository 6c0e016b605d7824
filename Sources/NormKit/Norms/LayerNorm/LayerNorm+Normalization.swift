// LayerNorm's conformance to the engine: its rows, its parameter checks, and its row
// functions (ForwardKernel.swift forward, BackwardJob.swift backward) bound to its
// parameters.

import CNormKernels

extension LayerNorm {
    public func _layout(inputShape shape: [Int]) throws(NormKitError) -> _RowLayout {
        let rows = try NormValidation.rows(of: shape, normalizedShape: normalizedShape, dim: dim)
        try _validateParameters()
        return _RowLayout(rows: rows, length: dim)
    }

    /// Checks the weight and bias the layer applies (they are assignable).
    public func _validateParameters() throws(NormKitError) {
        if elementwiseAffine { try NormValidation.parameter("weight", weight, shape: normalizedShape) }
        if usesBias { try NormValidation.parameter("bias", bias, shape: normalizedShape) }
    }

    public var _parameterLayout: _ParameterLayout {
        _ParameterLayout(shape: normalizedShape, count: dim, weight: elementwiseAffine, bias: usesBias)
    }

    public func _withRowFunctions<R>(_ layout: _RowLayout, _ body: (_RowFunctions) -> R) -> R {
        let level = InstructionSet.current
        return withParameters(level) { parameters in
            var context = LayerNormContext(parameters: parameters, add: Kernels.rmsNorm(at: level).add)
            context.parameters.streamsOutput = layout.streamsOutput
            context.parameters.addFromMemory = StreamingStores.outgrowsCache(rows: layout.rows, length: layout.length,
                                                                             streams: 4)
            return withUnsafePointer(to: &context) { context in
                body(_RowFunctions(context: UnsafeRawPointer(context), forward: { context, x, y, start, end, means, scales in
                    let c = context.assumingMemoryBound(to: LayerNormContext.self)
                    ForwardKernel.run(x: x, y: y, rows: start ..< end, parameters: c.pointee.parameters,
                                      mean: means, rstd: scales)
                }, addForward: { context, x, residual, sum, y, start, end, means, scales in
                    let c = context.assumingMemoryBound(to: LayerNormContext.self)
                    let n = c.pointee.parameters.dim
                    if !c.pointee.parameters.streamsOutput && UnsafePointer(sum) != UnsafePointer(y) {
                        // The add inside the pipelined moments: one pass over x and the stream.
                        ForwardKernel.runAddPipelined(x: x, residual: residual, sum: sum, y: y, rows: start ..< end,
                                                      parameters: c.pointee.parameters, mean: means, rstd: scales)
                        return
                    }
                    // y is the stream (or y streams): a chunk of rows at a time (about 256 KB
                    // of sum, at most 32 rows), so the sum is normalised while it is in L2.
                    let chunk = max(4, min(32, 65536 / max(n, 1)))
                    var row = start
                    while row < end {
                        let stop = min(row &+ chunk, end)
                        c.pointee.add(x + row &* n, residual + row &* n, sum + row &* n, (stop &- row) &* n)
                        ForwardKernel.run(x: UnsafePointer(sum), y: y, rows: row ..< stop, parameters: c.pointee.parameters,
                                          mean: means, rstd: scales)
                        row = stop
                    }
                }, backward: { context, job, blocks in
                    let p = context.assumingMemoryBound(to: LayerNormContext.self).pointee.parameters
                    let r = job.pointee
                    BackwardJob(
                        dim: r.length, rows: r.rows, eps: p.eps, x: r.x, dy: r.dy, dx: r.dx, accumulate: r.accumulate,
                        mean: r.means!, rstd: r.scales, weight: p.weight,
                        partialWeight: r.partialWeight?.assumingMemoryBound(to: Float.self),
                        partialBias: r.partialBias?.assumingMemoryBound(to: Float.self),
                        fallbackRows: r.fallbackRows, kernels: p.kernels
                    ).run(blocks: blocks)
                }, partialsAreDouble: false, halfForward: { context, format, x, y, start, end, scratch, conversions in
                    let c = context.assumingMemoryBound(to: LayerNormContext.self)
                    ForwardKernel.runHalf(x: x, y: y, rows: start ..< end, format: format, parameters: c.pointee.parameters,
                                          scratch: scratch, conversions: conversions)
                }, halfAddForward: { context, format, x, residual, sum, y, start, end, scratch, conversions in
                    let c = context.assumingMemoryBound(to: LayerNormContext.self)
                    ForwardKernel.runAddHalf(x: x, residual: residual, sum: sum, y: y, rows: start ..< end,
                                             format: format, parameters: c.pointee.parameters, scratch: scratch,
                                             conversions: conversions)
                }, halfFormats: parameters.kernels.half_in_registers))
            }
        }
    }

    /// Calls `body` with kernel parameters pointing at the effective weight and bias
    /// (ones and zeros where the layer skips them).
    func withParameters<R>(_ level: InstructionSet = .current, _ body: (ForwardParameters) -> R) -> R {
        let w = elementwiseAffine ? weight : identityWeight
        let b = usesBias ? bias : identityBias
        let kernels = Kernels.layerNorm(at: level)
        return w.withUnsafeBufferPointer { wp in
            b.withUnsafeBufferPointer { bp in
                BLAS.ones.withUnsafeBufferPointer { ones in
                    body(ForwardParameters(
                        dim: dim, eps: Double(eps), weight: wp.baseAddress!, bias: bp.baseAddress!,
                        ones: ones.baseAddress!, kernels: kernels,
                        weightMax: elementwiseAffine ? weightMax : 1, biasMax: usesBias ? biasMax : 0))
                }
            }
        }
    }
}

/// What LayerNorm's row functions read: the forward parameters (which the backward
/// shares) and the fused form's add.
private struct LayerNormContext {
    var parameters: ForwardParameters
    var add: @convention(c) (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void
}

// For tests: the engine's drivers with LayerNorm's historical internal spellings.
extension LayerNorm {
    /// Runs the forward over `rows` rows of caller memory, writing each row's
    /// statistics when `mean`/`rstd` are given.
    func runForward(
        _ x: UnsafeBufferPointer<Float>, _ y: UnsafeMutableBufferPointer<Float>, rows: Int,
        mean: UnsafeMutablePointer<Double>? = nil, rstd: UnsafeMutablePointer<Double>? = nil
    ) {
        _run(_RowLayout(rows: rows, length: dim), x: x.baseAddress, y: y.baseAddress, means: mean, scales: rstd)
    }

    /// Runs the backward over all rows with `forEachBlockRange` choosing how blocks are
    /// scheduled, and returns how many rows took the Double fallback.
    ///
    /// `forEachBlockRange` is handed the block count and a `@Sendable` body, and must
    /// call the body on disjoint ranges covering `0..<blockCount`, in any order and on
    /// any threads: the results do not depend on how.
    @discardableResult
    func runBackward(
        outputGradient: Tensor, input: Tensor, statistics: Statistics, rows: Int,
        dx: UnsafeMutableBufferPointer<Float>, accumulate: Bool,
        weightSums: inout [Double]?, biasSums: inout [Double]?,
        forEachBlockRange: (Int, @escaping @Sendable (Range<Int>) -> Void) -> Void = { count, body in body(0..<count) }
    ) -> Int {
        let layout = _RowLayout(rows: rows, length: dim)
        guard rows > 0 else { return 0 }
        let n = dim
        var weightResult: [Double]? = nil, biasResult: [Double]? = nil
        let count = _withBackwardFunctions(outputGradient: outputGradient, input: input, statistics: statistics,
                                           layout: layout) { functions, x, dy, means, scales in
            RowEngine.backward(
                functions, layout, x: x, dy: dy, dx: dx.baseAddress!, accumulate: accumulate, means: means,
                scales: scales, parameterCount: n, weight: weightSums != nil, bias: biasSums != nil,
                schedule: { call, blocks in
                    let copy = call.pointee
                    forEachBlockRange(blocks) { range in copy.run(range) }
                }
            ) { w, b in
                weightResult = w.map { Array(UnsafeBufferPointer(start: $0, count: n)) }
                biasResult = b.map { Array(UnsafeBufferPointer(start: $0, count: n)) }
            }
        }
        if weightSums != nil { weightSums = weightResult }
        if biasSums != nil { biasSums = biasResult }
        return count
    }
}
