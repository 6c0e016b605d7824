// The residual add fused into the norm (pre-norm transformer blocks):
// sum = input + residual, output = norm(sum), in one pass over the rows.

extension LayerNorm {
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
                        runAdding(x: x.baseAddress, residual: r.baseAddress, sum: s.baseAddress, y: out.baseAddress, rows: rows)
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
                    runAdding(x: x.baseAddress, residual: UnsafePointer(r.baseAddress), sum: r.baseAddress, y: out.baseAddress, rows: rows)
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
    /// var g = try norm.zeroGradients(inputShape: x.shape)
    /// g.input = dSumLater
    /// try norm.backward(outputGradient: dy, input: sum, statistics: stats, accumulatingInto: &g)
    /// // g.input is ∂loss/∂sum = ∂loss/∂x = ∂loss/∂h; g.weight and g.bias the parameters' gradients
    /// ```
    ///
    /// - Throws: as ``forward(_:addingResidual:)``.
    public func forwardForTraining(
        _ input: Tensor, addingResidual residual: Tensor
    ) throws(NormKitError) -> (output: Tensor, sum: Tensor, statistics: Statistics) {
        let rows = try validate(input: input.shape)
        try NormValidation.residual(residual.shape, input: input.shape)
        var sum = Tensor(uncheckedShape: input.shape, count: input.scalarCount) { _ in }
        var means = [Double](repeating: 0, count: rows)
        var rstds = [Double](repeating: 0, count: rows)
        let output = Tensor(uncheckedShape: input.shape, count: input.scalarCount) { out in
            input.withUnsafeBufferPointer { x in
                residual.withUnsafeBufferPointer { r in
                    sum.withUnsafeMutableBufferPointer { s in
                        means.withUnsafeMutableBufferPointer { m in
                            rstds.withUnsafeMutableBufferPointer { rs in
                                runAdding(x: x.baseAddress, residual: r.baseAddress, sum: s.baseAddress, y: out.baseAddress,
                                          rows: rows, mean: m.baseAddress, rstd: rs.baseAddress)
                            }
                        }
                    }
                }
            }
        }
        return (output, sum, Statistics(uncheckedInputShape: input.shape, means: means, reciprocalStandardDeviations: rstds))
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
    ///   ``NormKitError/parameterShapeMismatch(name:expected:actual:)`` when ``weight`` or ``bias`` is not `[dim]`.
    public func forward(
        _ input: UnsafeBufferPointer<Float>, addingTo residual: UnsafeMutableBufferPointer<Float>,
        into output: UnsafeMutableBufferPointer<Float>
    ) throws(NormKitError) {
        let rows = try NormValidation.fusedBuffers(input: input, residual: residual, output: output, dim: dim)
        try validateParameters()
        runAdding(x: input.baseAddress, residual: UnsafePointer(residual.baseAddress), sum: residual.baseAddress,
            y: output.baseAddress, rows: rows)
    }
}

extension LayerNorm {
    /// Rows of `sum = x + residual`, then `y = norm(sum)`, four rows at a time so the
    /// sum is normalised while it is in cache (bitwise the plain forward of the sum: a
    /// row's bits do not depend on how rows are grouped). `sum` may be `residual`'s or
    /// `x`'s memory, and `y` any of the three. Allocates nothing.
    func runAdding(
        x: UnsafePointer<Float>?, residual: UnsafePointer<Float>?, sum: UnsafeMutablePointer<Float>?,
        y: UnsafeMutablePointer<Float>?, rows: Int,
        mean: UnsafeMutablePointer<Double>? = nil, rstd: UnsafeMutablePointer<Double>? = nil
    ) {
        guard rows > 0, let x, let residual, let sum, let y else { return }
        let add = Kernels.rmsNorm.add
        withParameters { parameters in
            var job = FusedLayerNormJob(x: x, residual: residual, sum: sum, y: y, parameters: parameters,
                                        add: add, mean: mean, rstd: rstd)
            RowDriver.run(rows: rows, dim: dim, job: &job) { context, start, end, _ in
                let j = context.assumingMemoryBound(to: FusedLayerNormJob.self).pointee
                let n = j.parameters.dim
                var row = start
                while row < end {
                    let stop = min(row &+ 4, end)
                    j.add(j.x + row &* n, j.residual + row &* n, j.sum + row &* n, (stop &- row) &* n)
                    ForwardKernel.run(x: UnsafePointer(j.sum), y: j.y, rows: row ..< stop, parameters: j.parameters,
                                      mean: j.mean, rstd: j.rstd)
                    row = stop
                }
            }
        }
    }
}

/// What every block of a fused LayerNorm pass shares.
private struct FusedLayerNormJob {
    var x: UnsafePointer<Float>
    var residual: UnsafePointer<Float>
    var sum: UnsafeMutablePointer<Float>
    var y: UnsafeMutablePointer<Float>
    var parameters: ForwardParameters
    var add: @convention(c) (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void
    var mean: UnsafeMutablePointer<Double>?
    var rstd: UnsafeMutablePointer<Double>?
}
