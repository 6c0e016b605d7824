extension RMSNorm {
    /// Normalises `input` over its last axis.
    ///
    /// Any rank >= 1 works; every leading dimension is a batch dimension. An input
    /// with zero rows returns an empty tensor of the same shape.
    ///
    /// - Throws: ``NormKitError/inputShapeMismatch(expectedLastDimension:actual:)`` when
    ///   the last dimension is not ``dim``, ``NormKitError/parameterShapeMismatch(name:expected:actual:)``
    ///   when ``weight`` is not `[dim]`.
    public func forward(_ input: Tensor) throws(NormKitError) -> Tensor {
        let rows = try validate(input: input.shape)
        return Tensor(uncheckedShape: input.shape, count: input.scalarCount) { out in
            input.withUnsafeBufferPointer { x in run(x: x.baseAddress, y: out.baseAddress, rows: rows) }
        }
    }

    /// Normalises `input` into `output`, which must have the same shape; allocates nothing.
    ///
    /// - Throws: as ``forward(_:)``, and ``NormKitError/shapeMismatch(name:expected:actual:)``
    ///   when `output`'s shape differs from `input`'s.
    public func forward(_ input: Tensor, into output: inout Tensor) throws(NormKitError) {
        let rows = try validate(input: input.shape)
        try NormValidation.output(output.shape, input: input.shape)
        input.withUnsafeBufferPointer { x in
            output.withUnsafeMutableBufferPointer { out in run(x: x.baseAddress, y: out.baseAddress, rows: rows) }
        }
    }

    /// Normalises rows of `dim` floats held in caller memory (an arena, a memory map,
    /// another framework's buffer) into `output`; allocates nothing.
    ///
    /// `output` may be the very same memory as `input` (normalise in place); any other
    /// overlap throws. The result is bitwise the same as ``forward(_:)`` on a tensor of
    /// the same values.
    ///
    /// - Throws: ``NormKitError/invalidArgument(name:expected:actual:)`` when `input.count`
    ///   is not a multiple of ``dim``, `output.count` differs from `input.count`, or the
    ///   buffers partly overlap; ``NormKitError/parameterShapeMismatch(name:expected:actual:)``
    ///   when ``weight`` is not `[dim]`.
    public func forward(_ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>) throws(NormKitError) {
        let rows = try NormValidation.rows(ofCount: input.count, dim: dim, name: "input")
        try NormValidation.count("output", output.count, expected: input.count)
        try NormValidation.noPartialOverlap(input.baseAddress, "input", output.baseAddress, "output", count: input.count)
        try NormValidation.parameter("weight", weight, dim: dim)
        run(x: input.baseAddress, y: output.baseAddress, rows: rows)
    }

    /// Runs the kernel over `rows` rows: `y = norm(x)`, or with `residual`,
    /// `sum = residual + x` then `y = norm(sum)`; writes each row's `1/rms` into `rrms`
    /// when given. Splits big inputs over threads (`RowDriver`); allocates nothing.
    func run(
        x: UnsafePointer<Float>?, residual: UnsafePointer<Float>? = nil, sum: UnsafeMutablePointer<Float>? = nil,
        y: UnsafeMutablePointer<Float>?, rows: Int, rrms: UnsafeMutablePointer<Double>? = nil
    ) {
        guard rows > 0, let x, let y else { return }
        weight.withUnsafeBufferPointer { w in
            let p = RMSParameters(dim: dim, eps: Double(eps), weight: w.baseAddress!, offset: weightOffset,
                                  kernels: Kernels.rmsNorm)
            var job = RMSJob(x: x, residual: residual, sum: sum, y: y, parameters: p, rrms: rrms)
            RowDriver.run(rows: rows, dim: dim, job: &job) { context, start, end, _ in
                let j = context.assumingMemoryBound(to: RMSJob.self).pointee
                if let residual = j.residual, let sum = j.sum {
                    RMSKernel.runAdding(input: j.x, residual: residual, sum: sum, y: j.y, rows: start ..< end,
                                        parameters: j.parameters, rrms: j.rrms)
                } else {
                    RMSKernel.run(x: j.x, y: j.y, rows: start ..< end, parameters: j.parameters, rrms: j.rrms)
                }
            }
        }
    }
}

/// What every block of an RMSNorm pass shares.
private struct RMSJob {
    var x: UnsafePointer<Float>
    var residual: UnsafePointer<Float>?
    var sum: UnsafeMutablePointer<Float>?
    var y: UnsafeMutablePointer<Float>
    var parameters: RMSParameters
    var rrms: UnsafeMutablePointer<Double>?
}
