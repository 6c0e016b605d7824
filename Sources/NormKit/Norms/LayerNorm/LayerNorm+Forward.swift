import CNormKernels

extension LayerNorm {
    /// Normalises `input` over its last axis.
    ///
    /// Any rank >= 1 works; every leading dimension is a batch dimension. An input
    /// with zero rows returns an empty tensor of the same shape.
    ///
    /// - Throws: ``NormKitError/inputShapeMismatch(expectedLastDimension:actual:)`` when
    ///   the last dimension is not ``dim``, ``NormKitError/parameterShapeMismatch(name:expected:actual:)``
    ///   when ``weight`` or ``bias`` is not `[dim]`.
    public func forward(_ input: Tensor) throws(NormKitError) -> Tensor {
        let rows = try validate(input: input.shape)
        return Tensor(uncheckedShape: input.shape, count: input.scalarCount) { out in
            input.withUnsafeBufferPointer { x in
                runForward(x, out, rows: rows)
            }
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
            output.withUnsafeMutableBufferPointer { out in
                runForward(x, out, rows: rows)
            }
        }
    }

    /// Runs the kernel over all rows with this layer's parameters, writing each row's
    /// statistics into `mean`/`rstd` (`rows` entries each) when they are given.
    ///
    /// Inputs of more than a few hundred KB are split into blocks of rows run on up to
    /// ``Parallelism/effectiveThreadCount`` threads (``RowParallel``); each row's result
    /// depends on that row alone, so the output is bitwise the same for every thread
    /// count. Allocates nothing.
    func runForward(
        _ x: UnsafeBufferPointer<Float>, _ y: UnsafeMutableBufferPointer<Float>, rows: Int,
        mean: UnsafeMutablePointer<Double>? = nil, rstd: UnsafeMutablePointer<Double>? = nil
    ) {
        guard rows > 0, let xBase = x.baseAddress, let yBase = y.baseAddress else { return }
        // The thread setting is read only for inputs big enough to split.
        let workers = RowParallel.workerCount(rows: rows, dim: dim, threads: .max) == 1 ? 1
            : RowParallel.workerCount(rows: rows, dim: dim, threads: Parallelism.effectiveThreadCount)
        withParameters { parameters in
            if workers == 1 {
                ForwardKernel.run(x: xBase, y: yBase, rows: 0..<rows, parameters: parameters, mean: mean, rstd: rstd)
                return
            }
            // Plain data and a C function pointer: no closure context, no allocation.
            var job = ForwardJob(x: xBase, y: yBase, parameters: parameters, mean: mean, rstd: rstd)
            withUnsafeMutablePointer(to: &job) { job in
                RowParallel.forEachBlock(
                    rows: rows, blockSize: RowParallel.blockSize(dim: dim), threads: workers, context: job
                ) { job, start, end, _ in
                    let j = job.assumingMemoryBound(to: ForwardJob.self).pointee
                    ForwardKernel.run(x: j.x, y: j.y, rows: start ..< end, parameters: j.parameters, mean: j.mean, rstd: j.rstd)
                }
            }
        }
    }

    /// Calls `body` with kernel parameters pointing at the effective weight and bias
    /// (ones and zeros where the layer skips them).
    func withParameters<R>(_ body: (ForwardParameters) -> R) -> R {
        let w = elementwiseAffine ? weight : identityWeight
        let b = usesBias ? bias : identityBias
        let kernels = Kernels.layerNorm
        return w.withUnsafeBufferPointer { wp in
            b.withUnsafeBufferPointer { bp in
                BLAS.ones.withUnsafeBufferPointer { ones in
                    body(ForwardParameters(dim: dim, eps: Double(eps), weight: wp.baseAddress!,
                                           bias: bp.baseAddress!, ones: ones.baseAddress!, kernels: kernels))
                }
            }
        }
    }
}

/// What every block of a parallel forward pass shares.
private struct ForwardJob {
    var x: UnsafePointer<Float>
    var y: UnsafeMutablePointer<Float>
    var parameters: ForwardParameters
    var mean: UnsafeMutablePointer<Double>?
    var rstd: UnsafeMutablePointer<Double>?
}
