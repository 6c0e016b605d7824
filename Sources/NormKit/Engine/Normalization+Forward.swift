// The forward forms of every norm, written once: plain, into caller storage, the
// fused residual add, and training (with statistics).

extension Normalization {
    /// Normalises `input`; the same as `forward(_:)`.
    @_specialize(exported: true, where Self == LayerNorm)
    @_specialize(exported: true, where Self == RMSNorm)
    @_specialize(exported: true, where Self == GroupNorm)
    public func callAsFunction(_ input: Tensor) throws(NormKitError) -> Tensor {
        try forward(input)
    }

    /// Normalises `input`.
    ///
    /// Every leading dimension is a batch dimension. An input with zero rows returns an
    /// empty tensor of the same shape.
    ///
    /// - Throws: ``NormKitError/inputShapeMismatch(expectedLastDimension:actual:)`` (or
    ///   another shape error naming what the layer expects) when the input does not fit
    ///   the layer, ``NormKitError/parameterShapeMismatch(name:expected:actual:)`` when
    ///   a parameter has been assigned a tensor of the wrong shape.
    @_specialize(exported: true, where Self == LayerNorm)
    @_specialize(exported: true, where Self == RMSNorm)
    @_specialize(exported: true, where Self == GroupNorm)
    public func forward(_ input: Tensor) throws(NormKitError) -> Tensor {
        let layout = try _layout(inputShape: input.shape)
        return Tensor(uncheckedShape: input.shape, count: input.scalarCount) { out in
            input.withUnsafeBufferPointer { x in _run(layout, x: x.baseAddress, y: out.baseAddress) }
        }
    }

    /// Normalises `input` into `output`, which must have the same shape; allocates nothing.
    ///
    /// - Throws: as `forward(_:)`, and ``NormKitError/shapeMismatch(name:expected:actual:)``
    ///   when `output`'s shape differs from `input`'s (then `output` is untouched).
    @_specialize(exported: true, where Self == LayerNorm)
    @_specialize(exported: true, where Self == RMSNorm)
    @_specialize(exported: true, where Self == GroupNorm)
    public func forward(_ input: Tensor, into output: inout Tensor) throws(NormKitError) {
        let layout = try _layout(inputShape: input.shape)
        try NormValidation.output(output.shape, input: input.shape)
        input.withUnsafeBufferPointer { x in
            output.withUnsafeMutableBufferPointer { out in _run(layout, x: x.baseAddress, y: out.baseAddress) }
        }
    }

    /// Normalises `input` like `forward(_:)` and also returns the per-row statistics
    /// that ``backward(outputGradient:input:statistics:)`` needs. `output` is bitwise
    /// the same as `forward(_:)`'s: the statistics come from the same kernel, in `Double`.
    ///
    /// - Throws: as `forward(_:)`.
    @_specialize(exported: true, where Self == LayerNorm)
    @_specialize(exported: true, where Self == RMSNorm)
    @_specialize(exported: true, where Self == GroupNorm)
    public func forwardForTraining(_ input: Tensor) throws(NormKitError) -> (output: Tensor, statistics: Statistics) {
        let layout = try _layout(inputShape: input.shape)
        var means = [Double](repeating: 0, count: Statistics._hasMeans ? layout.rows : 0)
        var scales = [Double](repeating: 0, count: layout.rows)
        let output = Tensor(uncheckedShape: input.shape, count: input.scalarCount) { out in
            input.withUnsafeBufferPointer { x in
                means.withUnsafeMutableBufferPointer { m in
                    scales.withUnsafeMutableBufferPointer { s in
                        _run(layout, x: x.baseAddress, y: out.baseAddress,
                             means: Statistics._hasMeans ? m.baseAddress : nil, scales: s.baseAddress)
                    }
                }
            }
        }
        return (output, Statistics(_uncheckedInputShape: input.shape, means: means, scales: scales))
    }

    /// Adds `residual` to `input` and normalises the sum: `sum = input + residual`
    /// (each element bitwise the float sum `+` gives) and `output = norm(sum)`, bitwise
    /// the same as `forward(_:)` of that sum, in one pass.
    ///
    /// - Throws: as `forward(_:)`, and ``NormKitError/shapeMismatch(name:expected:actual:)``
    ///   naming both shapes when `residual`'s shape is not `input`'s.
    @_specialize(exported: true, where Self == LayerNorm)
    @_specialize(exported: true, where Self == RMSNorm)
    @_specialize(exported: true, where Self == GroupNorm)
    public func forward(_ input: Tensor, addingResidual residual: Tensor) throws(NormKitError) -> (output: Tensor, sum: Tensor) {
        let (output, sum, _) = try _fusedForward(input, residual, statistics: false)
        return (output, sum)
    }

    /// ``forward(_:addingResidual:)`` that also returns the statistics of the sum, for
    /// ``backward(outputGradient:input:statistics:)`` with `input: sum`.
    ///
    /// The gradient of a loss with respect to the sum is what the norm's backward gives
    /// plus whatever flows into the sum from later blocks (the residual stream); both
    /// `input` and `residual` receive that same gradient. Start from the later blocks'
    /// gradient and accumulate:
    ///
    /// ```swift
    /// let (y, sum, stats) = try norm.forwardForTraining(x, addingResidual: h)
    /// // ... later: dy = ∂loss/∂y, dSumLater = ∂loss/∂sum through the stream
    /// var g = try norm.zeroGradients(inputShape: x.shape)
    /// g.input = dSumLater
    /// try norm.backward(outputGradient: dy, input: sum, statistics: stats, accumulatingInto: &g)
    /// // g.input is ∂loss/∂sum = ∂loss/∂x = ∂loss/∂h; g.weight (and g.bias) the parameters' gradients
    /// ```
    ///
    /// - Throws: as ``forward(_:addingResidual:)``.
    @_specialize(exported: true, where Self == LayerNorm)
    @_specialize(exported: true, where Self == RMSNorm)
    @_specialize(exported: true, where Self == GroupNorm)
    public func forwardForTraining(
        _ input: Tensor, addingResidual residual: Tensor
    ) throws(NormKitError) -> (output: Tensor, sum: Tensor, statistics: Statistics) {
        let (output, sum, statistics) = try _fusedForward(input, residual, statistics: true)
        return (output, sum, statistics!)
    }

    /// The residual stream in place: `residual += input`, then `output = norm(residual)`.
    /// Allocates nothing (as long as `residual` and `output` do not share storage with
    /// another tensor: a shared buffer is copied before it is written, as for any
    /// copy-on-write value). The results are bitwise those of
    /// ``forward(_:addingResidual:)``.
    ///
    /// Everything is validated before anything is written: a call that throws leaves
    /// `residual` and `output` untouched.
    ///
    /// ```swift
    /// // h: the residual stream [batch, seq, dim]; per block:
    /// try norm.forward(attentionOutput, addingTo: &h, into: &normed)   // h += a; normed = norm(h)
    /// ```
    ///
    /// - Throws: as ``forward(_:addingResidual:)``, and ``NormKitError/shapeMismatch(name:expected:actual:)``
    ///   when `output`'s shape is not `input`'s.
    @_specialize(exported: true, where Self == LayerNorm)
    @_specialize(exported: true, where Self == RMSNorm)
    @_specialize(exported: true, where Self == GroupNorm)
    public func forward(_ input: Tensor, addingTo residual: inout Tensor, into output: inout Tensor) throws(NormKitError) {
        let layout = try _layout(inputShape: input.shape)
        try NormValidation.residual(residual.shape, input: input.shape)
        try NormValidation.output(output.shape, input: input.shape)
        input.withUnsafeBufferPointer { x in
            residual.withUnsafeMutableBufferPointer { r in
                output.withUnsafeMutableBufferPointer { out in
                    _run(layout, x: x.baseAddress, residual: UnsafePointer(r.baseAddress), sum: r.baseAddress,
                         y: out.baseAddress)
                }
            }
        }
    }

    /// The fused forms that allocate: output, sum and (when asked) the statistics.
    func _fusedForward(
        _ input: Tensor, _ residual: Tensor, statistics wanted: Bool
    ) throws(NormKitError) -> (Tensor, Tensor, Statistics?) {
        let layout = try _layout(inputShape: input.shape)
        try NormValidation.residual(residual.shape, input: input.shape)
        var sum = Tensor(uncheckedShape: input.shape, count: input.scalarCount) { _ in }
        var means = [Double](repeating: 0, count: wanted && Statistics._hasMeans ? layout.rows : 0)
        var scales = [Double](repeating: 0, count: wanted ? layout.rows : 0)
        let output = Tensor(uncheckedShape: input.shape, count: input.scalarCount) { out in
            input.withUnsafeBufferPointer { x in
                residual.withUnsafeBufferPointer { r in
                    sum.withUnsafeMutableBufferPointer { s in
                        means.withUnsafeMutableBufferPointer { m in
                            scales.withUnsafeMutableBufferPointer { rs in
                                _run(layout, x: x.baseAddress, residual: r.baseAddress, sum: s.baseAddress,
                                     y: out.baseAddress, means: wanted && Statistics._hasMeans ? m.baseAddress : nil,
                                     scales: wanted ? rs.baseAddress : nil)
                            }
                        }
                    }
                }
            }
        }
        let statistics = wanted ? Statistics(_uncheckedInputShape: input.shape, means: means, scales: scales) : nil
        return (output, sum, statistics)
    }

    /// Runs the norm over all rows of `layout`: `y = norm(x)`, or with `residual` and
    /// `sum`, `sum = x + residual` then `y = norm(sum)`; writes each row's statistics
    /// when `means`/`scales` are given. Rows are split over threads for big inputs
    /// (``RowDriver``); the output is bitwise the same for every thread count.
    /// Allocates nothing.
    func _run(
        _ layout: _RowLayout, x: UnsafePointer<Float>?, residual: UnsafePointer<Float>? = nil,
        sum: UnsafeMutablePointer<Float>? = nil, y: UnsafeMutablePointer<Float>?,
        means: UnsafeMutablePointer<Double>? = nil, scales: UnsafeMutablePointer<Double>? = nil
    ) {
        guard layout.rows > 0, layout.length > 0, let x, let y else { return }
        var layout = layout
        layout.streamsOutput = StreamingStores.pays(rows: layout.rows, length: layout.length)
        _withRowFunctions(layout) { functions in
            RowEngine.forward(functions, layout, x: x, residual: residual, sum: sum, y: y, means: means, scales: scales)
        }
    }
}

extension RowNormalization {
    /// Normalises rows of ``dim`` floats held in caller memory (an arena, a memory map,
    /// another framework's buffer) into `output`; allocates nothing.
    ///
    /// `output` may be the very same memory as `input` (normalise in place); any other
    /// overlap throws. The result is bitwise the same as `forward(_:)` on a tensor of
    /// the same values.
    ///
    /// - Throws: ``NormKitError/invalidArgument(name:expected:actual:)`` when `input.count`
    ///   is not a multiple of ``dim``, `output.count` differs from `input.count`, or the
    ///   buffers partly overlap; ``NormKitError/parameterShapeMismatch(name:expected:actual:)``
    ///   when a parameter has the wrong shape.
    @_specialize(exported: true, where Self == LayerNorm)
    @_specialize(exported: true, where Self == RMSNorm)
    public func forward(_ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>) throws(NormKitError) {
        let rows = try NormValidation.rows(ofCount: input.count, dim: dim, name: "input")
        try NormValidation.count("output", output.count, expected: input.count)
        try NormValidation.noPartialOverlap(UnsafeRawPointer(input.baseAddress), "input",
                                            UnsafeRawPointer(output.baseAddress), "output", count: input.count)
        try _validateParameters()
        _run(_RowLayout(rows: rows, length: dim), x: input.baseAddress, y: output.baseAddress)
    }

    /// The residual stream in place over caller memory: `residual += input`, then
    /// `output = norm(residual)`, rows of ``dim`` floats. Allocates nothing; bitwise the
    /// same as ``forward(_:addingTo:into:)`` on tensors of the same values.
    ///
    /// Aliasing: each pair of the three buffers is either the very same memory or
    /// disjoint. `output` may be `residual` (the stream is replaced by its norm) or
    /// `input`; `input` may be `residual` (the stream is doubled). A partial overlap throws.
    ///
    /// - Throws: ``NormKitError/invalidArgument(name:expected:actual:)`` when `input.count`
    ///   is not a multiple of ``dim``, `residual.count` or `output.count` differs from it,
    ///   or two buffers partly overlap (then nothing is written);
    ///   ``NormKitError/parameterShapeMismatch(name:expected:actual:)`` when a parameter has the wrong shape.
    @_specialize(exported: true, where Self == LayerNorm)
    @_specialize(exported: true, where Self == RMSNorm)
    public func forward(
        _ input: UnsafeBufferPointer<Float>, addingTo residual: UnsafeMutableBufferPointer<Float>,
        into output: UnsafeMutableBufferPointer<Float>
    ) throws(NormKitError) {
        let rows = try NormValidation.fusedBuffers(input: input, residual: residual, output: output, dim: dim)
        try _validateParameters()
        _run(_RowLayout(rows: rows, length: dim), x: input.baseAddress, residual: UnsafePointer(residual.baseAddress),
             sum: residual.baseAddress, y: output.baseAddress)
    }
}
