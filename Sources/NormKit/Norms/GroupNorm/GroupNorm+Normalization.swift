// GroupNorm's conformance to the engine: (sample, group) rows, its parameter checks,
// and its row functions (GroupNormKernel.swift) bound to its parameters.

extension GroupNorm {
    public func _layout(inputShape shape: [Int]) throws(NormKitError) -> _RowLayout {
        guard shape.count >= 2, shape[1] == channels else {
            throw .invalidArgument(name: "input", expected: "shape [N, \(channels), *spatial] (channels first)",
                                   actual: "shape \(shape)")
        }
        try _validateParameters()
        let (rows, overflow) = shape[0].multipliedReportingOverflow(by: groups)
        if overflow { throw .shapeOverflow(shape: shape) }
        // A zero dimension anywhere: no elements, whatever the others multiply to.
        if shape.contains(0) { return _RowLayout(rows: rows, length: 0, inner: 0) }
        var spatial = 1
        for d in shape.dropFirst(2) { spatial &*= d }  // cannot overflow: a Tensor's shape product fits
        return _RowLayout(rows: rows, length: channels / groups &* spatial, inner: spatial)
    }

    /// Checks the weight and bias the layer applies (they are assignable).
    public func _validateParameters() throws(NormKitError) {
        guard affine else { return }
        try NormValidation.parameter("weight", weight, shape: identityWeight.shape)
        try NormValidation.parameter("bias", bias, shape: identityWeight.shape)
    }

    public var _parameterLayout: _ParameterLayout {
        _ParameterLayout(shape: identityWeight.shape, count: channels, weight: affine, bias: affine)
    }

    public func _withRowFunctions<R>(_ layout: _RowLayout, _ body: (_RowFunctions) -> R) -> R {
        let w = affine ? weight : identityWeight
        let b = affine ? bias : identityBias
        let level = InstructionSet.current
        return w.withUnsafeBufferPointer { wp in
            b.withUnsafeBufferPointer { bp in
                BLAS.ones.withUnsafeBufferPointer { ones in
                    var parameters = GroupNormParameters(
                        groups: groups, channelsPerGroup: channels / groups, spatial: layout.inner, eps: Double(eps),
                        weight: wp.baseAddress!, bias: bp.baseAddress!, ones: ones.baseAddress!,
                        layerNorm: Kernels.layerNorm(at: level), groupNorm: Kernels.groupNorm(at: level),
                        add: Kernels.rmsNorm(at: level).add)
                    return withUnsafePointer(to: &parameters) { context in
                        body(_RowFunctions(context: UnsafeRawPointer(context), forward: { context, x, y, start, end, means, scales in
                            GroupNormKernel.run(x: x, y: y, rows: start ..< end,
                                                context.assumingMemoryBound(to: GroupNormParameters.self).pointee,
                                                means: means, rstds: scales)
                        }, addForward: { context, x, residual, sum, y, start, end, means, scales in
                            let p = context.assumingMemoryBound(to: GroupNormParameters.self).pointee
                            let n = p.channelsPerGroup &* p.spatial
                            for row in start ..< end {
                                p.add(x + row &* n, residual + row &* n, sum + row &* n, n)
                                GroupNormKernel.run(x: UnsafePointer(sum), y: y, rows: row ..< row &+ 1, p,
                                                    means: means, rstds: scales)
                            }
                        }, backward: { context, job, blocks in
                            GroupNormKernel.backward(job.pointee, blocks: blocks,
                                                     context.assumingMemoryBound(to: GroupNormParameters.self).pointee)
                        }, partialsAreDouble: true, rowsPerBlock: GroupNormKernel.rowsPerBlock(length: layout.length)))
                    }
                }
            }
        }
    }
}
