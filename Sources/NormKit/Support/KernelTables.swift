import CNormKernels

extension Kernels {
    /// The RMSNorm and fused-add kernels at ``InstructionSet/current``. Read on the
    /// calling thread and handed down in the call's parameters.
    static var rmsNorm: nk_rmsnorm_kernels { rmsNorm(at: InstructionSet.current) }

    /// The RMSNorm kernels at `level`, which must be supported.
    static func rmsNorm(at level: InstructionSet) -> nk_rmsnorm_kernels {
        guard let table = nk_rmsnorm_kernels_for(level.code) else {
            preconditionFailure("NormKit: instruction set \(level) chosen on a CPU without it")
        }
        return table.pointee
    }
}
