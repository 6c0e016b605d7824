// The backward forms of every norm, written once: allocating, into caller storage,
// and accumulating.

extension Normalization {
    /// The gradients of a loss with respect to this layer's input and parameters,
    /// given the gradient with respect to its output (each type's documentation has
    /// its formulas).
    ///
    /// The results are fresh tensors. Each is within 1e-5 of a float64 computation
    /// relative to `max(1, max|expected|)` (per row for `input`, over the whole tensor
    /// for the parameters); the parameter gradients are bitwise reproducible, whatever
    /// the thread count. A row whose input held NaN or infinity gets a NaN input
    /// gradient, and makes the weight gradient NaN. A parameter the layer does not
    /// apply gets an empty `[0]` gradient (not zeros), so using it where a full
    /// gradient is expected fails loudly.
    ///
    /// - Parameters:
    ///   - outputGradient: ∂loss/∂output, the shape of `input`.
    ///   - input: the input that was given to ``forwardForTraining(_:)``.
    ///   - statistics: what ``forwardForTraining(_:)`` returned for that input.
    ///     Statistics of another tensor of the same shape are not detected.
    /// - Throws: ``NormKitError`` when `input` does not fit the layer, a parameter has
    ///   the wrong shape, or `outputGradient` or the statistics' input shape differs
    ///   from `input`'s shape.
    @_specialize(exported: true, where Self == LayerNorm)
    @_specialize(exported: true, where Self == RMSNorm)
    @_specialize(exported: true, where Self == GroupNorm)
    public func backward(
        outputGradient: Tensor, input: Tensor, statistics: Statistics
    ) throws(NormKitError) -> Gradients {
        let layout = try _validateBackward(outputGradient: outputGradient, input: input, statistics: statistics)
        let p = _parameterLayout
        var gradients = Gradients(
            _input: Tensor(uncheckedShape: input.shape, count: input.scalarCount) { _ in },
            weight: Tensor.zeros(p.weight ? p.shape : [0]), bias: Tensor.zeros(p.bias ? p.shape : [0]))
        _runBackward(outputGradient: outputGradient, input: input, statistics: statistics, layout: layout,
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
    ///   - input: the input the statistics were computed from.
    ///   - statistics: what ``forwardForTraining(_:)`` returned for `input`.
    ///   - gradients: shaped as ``zeroGradients(inputShape:)`` makes them.
    /// - Throws: as ``backward(outputGradient:input:statistics:)``, and when a tensor
    ///   of `gradients` has the wrong shape (then nothing is changed).
    @_specialize(exported: true, where Self == LayerNorm)
    @_specialize(exported: true, where Self == RMSNorm)
    @_specialize(exported: true, where Self == GroupNorm)
    public func backward(
        outputGradient: Tensor, input: Tensor, statistics: Statistics, into gradients: inout Gradients
    ) throws(NormKitError) {
        let layout = try _validateBackward(outputGradient: outputGradient, input: input, statistics: statistics)
        try _validateGradientShapes(&gradients, input: input)
        _runBackward(outputGradient: outputGradient, input: input, statistics: statistics, layout: layout,
                     into: &gradients, accumulate: false)
    }

    /// Like ``backward(outputGradient:input:statistics:)``, but adds the gradients
    /// into `gradients`: `gradients.input += ∂loss/∂input` (each element the float sum
    /// of the old value and the gradient: what a residual stream needs) and the same for
    /// the parameters (added in `Double` and rounded once: gradient accumulation over
    /// micro-batches). Allocates nothing, as ``backward(outputGradient:input:statistics:into:)``.
    ///
    /// - Parameters:
    ///   - outputGradient: ∂loss/∂output, shaped like `input`.
    ///   - input: the input the statistics were computed from.
    ///   - statistics: what ``forwardForTraining(_:)`` returned for `input`.
    ///   - gradients: shaped as ``zeroGradients(inputShape:)`` makes them.
    /// - Throws: as ``backward(outputGradient:input:statistics:)``, and when a tensor
    ///   of `gradients` has the wrong shape (then nothing is changed).
    @_specialize(exported: true, where Self == LayerNorm)
    @_specialize(exported: true, where Self == RMSNorm)
    @_specialize(exported: true, where Self == GroupNorm)
    public func backward(
        outputGradient: Tensor, input: Tensor, statistics: Statistics, accumulatingInto gradients: inout Gradients
    ) throws(NormKitError) {
        let layout = try _validateBackward(outputGradient: outputGradient, input: input, statistics: statistics)
        try _validateGradientShapes(&gradients, input: input)
        _runBackward(outputGradient: outputGradient, input: input, statistics: statistics, layout: layout,
                     into: &gradients, accumulate: true)
    }

    /// Zero gradients to accumulate into: `input` of `inputShape`, and each parameter's
    /// gradient shaped like the parameter (or `[0]` where the layer has no such parameter).
    ///
    /// - Throws: ``NormKitError`` for an invalid shape, or one this layer's backward
    ///   would refuse (as ``backward(outputGradient:input:statistics:)`` checks `input`).
    @_specialize(exported: true, where Self == LayerNorm)
    @_specialize(exported: true, where Self == RMSNorm)
    @_specialize(exported: true, where Self == GroupNorm)
    public func zeroGradients(inputShape: [Int]) throws(NormKitError) -> Gradients {
        _ = try Shape.elementCount(inputShape)
        _ = try _layout(inputShape: inputShape)
        let p = _parameterLayout
        return Gradients(_input: try Tensor(validatingShape: inputShape, repeating: 0),
                         weight: Tensor.zeros(p.weight ? p.shape : [0]), bias: Tensor.zeros(p.bias ? p.shape : [0]))
    }

    /// Checks backward's arguments; returns the input's layout.
    func _validateBackward(outputGradient: Tensor, input: Tensor, statistics: Statistics) throws(NormKitError) -> _RowLayout {
        let layout = try _layout(inputShape: input.shape)
        try NormValidation.backward(outputGradient: outputGradient.shape, input: input.shape,
                                    statistics: statistics.inputShape)
        guard statistics.rowCount == layout.rows else {
            throw .invalidArgument(name: "statistics", expected: "\(layout.rows) rows (one per normalised group of \(input.shape))",
                                   actual: "\(statistics.rowCount)")
        }
        return layout
    }

    /// Checks the shapes of gradients to write or add into. Compared without building
    /// the expected shapes: no array is allocated unless it throws.
    func _validateGradientShapes(_ gradients: inout Gradients, input: Tensor) throws(NormKitError) {
        guard gradients.input.shape == input.shape else {
            throw .shapeMismatch(name: "gradients.input", expected: input.shape, actual: gradients.input.shape)
        }
        let p = _parameterLayout
        try NormValidation.gradient("gradients.weight", gradients.weight.shape, expected: p.shape, present: p.weight)
        let biasShape = gradients._withBias { $0.shape }
        if let biasShape {
            try NormValidation.gradient("gradients.bias", biasShape, expected: p.shape, present: p.bias)
        }
    }

    /// The public calls' driver: the norm's backward over all rows on up to
    /// ``Parallelism/effectiveThreadCount`` threads, written or added into `gradients`,
    /// whose shapes were checked.
    func _runBackward(outputGradient: Tensor, input: Tensor, statistics: Statistics, layout: _RowLayout,
                      into gradients: inout Gradients, accumulate: Bool) {
        let p = _parameterLayout
        guard layout.rows > 0, layout.length > 0 else {
            if !accumulate {
                gradients.weight.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
                _ = gradients._withBias { $0.withUnsafeMutableBufferPointer { $0.update(repeating: 0) } }
            }
            return
        }
        // Moved out, so each is uniquely referenced (no copy-on-write) and the three are
        // separate variables (no overlapping access through the protocol's accessors).
        let empty = RowEngine.placeholder
        var dxTensor = gradients.input, weight = gradients.weight
        gradients.input = empty
        gradients.weight = empty
        var bias = gradients._withBias { b in
            let t = b
            b = empty
            return t
        }
        _ = dxTensor.withUnsafeMutableBufferPointer { dx in
            _withBackwardFunctions(outputGradient: outputGradient, input: input, statistics: statistics, layout: layout) {
                functions, x, dy, means, scales in
                RowEngine.backward(
                    functions, layout, x: x, dy: dy, dx: dx.baseAddress!, accumulate: accumulate, means: means,
                    scales: scales, parameterCount: p.count, weight: p.weight, bias: p.bias,
                    schedule: { RowEngine.onPool($0, blocks: $1, layout) }
                ) { weightSums, biasSums in
                    if let weightSums {
                        weight.withUnsafeMutableBufferPointer { RowEngine.store(weightSums, into: $0, adding: accumulate) }
                    }
                    if let biasSums {
                        bias?.withUnsafeMutableBufferPointer { RowEngine.store(biasSums, into: $0, adding: accumulate) }
                    }
                }
            }
        }
        gradients.input = dxTensor
        gradients.weight = weight
        if let bias { _ = gradients._withBias { $0 = bias } }
    }

    /// Calls `body` with the row functions and the call's raw inputs.
    func _withBackwardFunctions<R>(
        outputGradient: Tensor, input: Tensor, statistics: Statistics, layout: _RowLayout,
        _ body: (_RowFunctions, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Double>?, UnsafePointer<Double>) -> R
    ) -> R {
        input.withUnsafeBufferPointer { x in
            outputGradient.withUnsafeBufferPointer { dy in
                statistics._withRows { means, scales in
                    _withRowFunctions(layout) { functions in
                        body(functions, x.baseAddress!, dy.baseAddress!, means, scales!)
                    }
                }
            }
        }
    }
}
