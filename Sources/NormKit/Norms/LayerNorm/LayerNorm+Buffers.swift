extension LayerNorm {
    /// Normalises rows of ``dim`` floats held in caller memory (an arena, a memory map,
    /// another framework's buffer) into `output`; allocates nothing.
    ///
    /// `output` may be the very same memory as `input` (normalise in place); any other
    /// overlap throws. The result is bitwise the same as ``forward(_:)`` on a tensor of
    /// the same values.
    ///
    /// - Throws: ``NormKitError/invalidArgument(name:expected:actual:)`` when `input.count`
    ///   is not a multiple of ``dim``, `output.count` differs from `input.count`, or the
    ///   buffers partly overlap; ``NormKitError/parameterShapeMismatch(name:expected:actual:)``
    ///   when ``weight`` or ``bias`` is not `[dim]`.
    public func forward(_ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>) throws(NormKitError) {
        let rows = try NormValidation.rows(ofCount: input.count, dim: dim, name: "input")
        try NormValidation.count("output", output.count, expected: input.count)
        try NormValidation.noPartialOverlap(UnsafeRawPointer(input.baseAddress), "input",
                                            UnsafeRawPointer(output.baseAddress), "output", count: input.count)
        try validateParameters()
        runForward(input, output, rows: rows)
    }
}
