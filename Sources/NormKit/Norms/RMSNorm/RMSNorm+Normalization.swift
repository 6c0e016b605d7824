// RMSNorm's conformance to the engine: its rows, its weight check, and its row
// functions (RMSKernel.swift forward, RMSBackwardKernel.swift backward) bound to its
// parameters.

extension RMSNorm {
    public func _layout(inputShape shape: [Int]) throws(NormKitError) -> _RowLayout {
        let rows = try NormValidation.rows(of: shape, normalizedShape: normalizedShape, dim: dim)
        try _validateParameters()
        return _RowLayout(rows: rows, length: dim)
    }

    /// Checks the weight (it is assignable).
    public func _validateParameters() throws(NormKitError) {
        try NormValidation.parameter("weight", weight, shape: normalizedShape)
    }

    public var _parameterLayout: _ParameterLayout {
        _ParameterLayout(shape: normalizedShape, count: dim, weight: true, bias: false)
    }

    public func _withRowFunctions<R>(_ layout: _RowLayout, _ body: (_RowFunctions) -> R) -> R {
        let pipelines = RMSKernel.pipelines(rows: layout.rows, length: layout.length)
        return weight.withUnsafeBufferPointer { w in
            _withRowFunctions(weight: w.baseAddress!, offset: weightOffset, pipelines: pipelines, body)
        }
    }

    /// The row functions with a scale of exactly 1 (x̂ alone), and the layer's weight and
    /// offset for the caller to apply: ``HalfRounding/huggingFaceLlama``'s first step.
    /// Allocates nothing for `dim` up to `BLAS.maxChunk` (the shared ones vector).
    func _withUnitScale<R>(_ body: (_RowFunctions, UnsafePointer<Float>, Float) -> R) -> R {
        weight.withUnsafeBufferPointer { w in
            func unit(_ ones: UnsafePointer<Float>) -> R {
                // Its one caller (HalfEngine, Hugging Face's order) runs chunks of rows widened
                // into scratch (HalfEngine.chunkFloats floats), which are in cache: pipelined
                // (the same bits either way).
                _withRowFunctions(weight: ones, offset: 0, pipelines: true) { body($0, w.baseAddress!, weightOffset) }
            }
            if dim <= BLAS.maxChunk { return BLAS.ones.withUnsafeBufferPointer { unit($0.baseAddress!) } }
            return [Float](repeating: 1, count: dim).withUnsafeBufferPointer { unit($0.baseAddress!) }
        }
    }

    private func _withRowFunctions<R>(
        weight: UnsafePointer<Float>, offset: Float, pipelines: Bool, _ body: (_RowFunctions) -> R
    ) -> R {
        var parameters = RMSParameters(dim: dim, eps: Double(eps), weight: weight, offset: offset,
                                       kernels: Kernels.rmsNorm, pipelines: pipelines)
        let halfFormats = parameters.kernels.half_in_registers
        return withUnsafePointer(to: &parameters) { context in
            body(_RowFunctions(context: UnsafeRawPointer(context), forward: { context, x, y, start, end, _, scales in
                RMSKernel.run(x: x, y: y, rows: start ..< end,
                              parameters: context.assumingMemoryBound(to: RMSParameters.self).pointee, rrms: scales)
            }, addForward: { context, x, residual, sum, y, start, end, _, scales in
                RMSKernel.runAdding(input: x, residual: residual, sum: sum, y: y, rows: start ..< end,
                                    parameters: context.assumingMemoryBound(to: RMSParameters.self).pointee, rrms: scales)
            }, backward: { context, job, blocks in
                let p = context.assumingMemoryBound(to: RMSParameters.self).pointee
                let r = job.pointee
                let j = RMSBackwardJob(
                    dim: r.length, rows: r.rows, eps: p.eps, x: r.x, dy: r.dy, dx: r.dx, accumulate: r.accumulate,
                    rrms: r.scales,
                    weight: p.weight, offset: p.offset,
                    partials: r.partialWeight!.assumingMemoryBound(to: Double.self), kernels: p.kernels)
                for b in blocks { j.run(block: b) }
            }, partialsAreDouble: true, halfForward: { context, format, x, y, start, end, scratch, conversions in
                RMSKernel.runHalf(x: x, y: y, rows: start ..< end, format: format,
                                  parameters: context.assumingMemoryBound(to: RMSParameters.self).pointee,
                                  scratch: scratch, conversions: conversions)
            }, halfFormats: halfFormats))
        }
    }
}
