// The residual add fused into the norm (pre-norm transformer blocks):
// sum = input + residual, output = norm(sum), in one pass over the rows.

extension RMSNorm {
    /// Adds `residual` to `input` and normalises the sum: `sum = input + residual`
    /// (each element bitwise the float sum `+` gives) and `output = norm(sum)`, bitwise
    /// the same as ``forward(_:)`` of that sum, in one pass.
    ///
    /// - Throws: as ``forward(_:)``, and ``NormKitError/shapeMismatch(name:expected:actual:)``
    ///   naming both shapes when `residual`'s shape is not `input`'s.
    public func forward(_ input: Tensor, addingResidual residual: Tensor) throws(NormKitError) -> (output: Tensor, sum: Tensor) {
        let rows = try validate(input: input.shape)
        try NormValidation.residual(residual.shape, input: input.shape)
        var sum = Tensor(uncheckedShape: input.shape, count: input.scalarCount) { _ in }
        let output = Tensor(uncheckedShape: input.shape, count: input.scalarCount) { out in
            input.withUnsafeBufferPointer { x in
                residual.withUnsafeBufferPointer { r in
                    sum.withUnsafeMutableBufferPointer { s in
                        run(x: x.baseAddress, residual: r.baseAddress, sum: s.baseAddress, y: out.baseAddress, rows: rows)
                    }
                }
            }
        }
        return (output, sum)
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
    public func forward(_ input: Tensor, addingTo residual: inout Tensor, into output: inout Tensor) throws(NormKitError) {
        let rows = try validate(input: input.shape)
        try NormValidation.residual(residual.shape, input: input.shape)
        try NormValidation.output(output.shape, input: input.shape)
        input.withUnsafeBufferPointer { x in
            residual.withUnsafeMutableBufferPointer { r in
                output.withUnsafeMutableBufferPointer { out in
                    run(x: x.baseAddress, residual: UnsafePointer(r.baseAddress), sum: r.baseAddress, y: out.baseAddress, rows: rows)
                }
            }
        }
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
    /// var g = RMSNorm.Gradients(input: dSumLater, weight: Tensor.zeros([norm.dim]))
    /// try norm.backward(outputGradient: dy, input: sum, statistics: stats, accumulatingInto: &g)
    /// // g.input is ∂loss/∂sum = ∂loss/∂x = ∂loss/∂h; g.weight is ∂loss/∂weight
    /// ```
    ///
    /// - Throws: as ``forward(_:addingResidual:)``.
    public func forwardForTraining(
        _ input: Tensor, addingResidual residual: Tensor
    ) throws(NormKitError) -> (output: Tensor, sum: Tensor, statistics: Statistics) {
        let rows = try validate(input: input.shape)
        try NormValidation.residual(residual.shape, input: input.shape)
        var sum = Tensor(uncheckedShape: input.shape, count: input.scalarCount) { _ in }
        var rrms = [Double](repeating: 0, count: rows)
        let output = Tensor(uncheckedShape: input.shape, count: input.scalarCount) { out in
            input.withUnsafeBufferPointer { x in
                residual.withUnsafeBufferPointer { r in
                    sum.withUnsafeMutableBufferPointer { s in
                        rrms.withUnsafeMutableBufferPointer { rr in
                            run(x: x.baseAddress, residual: r.baseAddress, sum: s.baseAddress, y: out.baseAddress,
                                rows: rows, rrms: rr.baseAddress)
                        }
                    }
                }
            }
        }
        return (output, sum, Statistics(uncheckedInputShape: input.shape, reciprocalRootMeanSquares: rrms))
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
    ///   ``NormKitError/parameterShapeMismatch(name:expected:actual:)`` when ``weight`` is not `[dim]`.
    public func forward(
        _ input: UnsafeBufferPointer<Float>, addingTo residual: UnsafeMutableBufferPointer<Float>,
        into output: UnsafeMutableBufferPointer<Float>
    ) throws(NormKitError) {
        let rows = try NormValidation.fusedBuffers(input: input, residual: residual, output: output, dim: dim)
        try NormValidation.parameter("weight", weight, dim: dim)
        run(x: input.baseAddress, residual: UnsafePointer(residual.baseAddress), sum: residual.baseAddress,
            y: output.baseAddress, rows: rows)
    }
}
