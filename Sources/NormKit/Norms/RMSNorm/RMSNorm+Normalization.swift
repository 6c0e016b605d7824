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
        weight.withUnsafeBufferPointer { w in
            var parameters = RMSParameters(dim: dim, eps: Double(eps), weight: w.baseAddress!, offset: weightOffset,
                                           kernels: Kernels.rmsNorm)
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
                }, partialsAreDouble: true))
            }
        }
    }
}
