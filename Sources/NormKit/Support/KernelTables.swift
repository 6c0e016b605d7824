// The kernel layer's function tables (CNormKernels: one C family per norm, compiled
// per instruction set), at the level in force. In NormKit "kernel" means a function of
// that layer; a table is read once per call, on the calling thread, and handed down in
// the call's parameters.

import CNormKernels

enum Kernels {
    /// The LayerNorm kernels at ``InstructionSet/current``.
    static var layerNorm: nk_layernorm_kernels { table(nk_layernorm_kernels_for, at: InstructionSet.current) }

    /// The RMSNorm and fused-add kernels at ``InstructionSet/current``.
    static var rmsNorm: nk_rmsnorm_kernels { table(nk_rmsnorm_kernels_for, at: InstructionSet.current) }

    /// The GroupNorm kernels at ``InstructionSet/current``.
    static var groupNorm: nk_groupnorm_kernels { table(nk_groupnorm_kernels_for, at: InstructionSet.current) }

    /// The families at `level` (one read of the level for a call that needs several).
    static func layerNorm(at level: InstructionSet) -> nk_layernorm_kernels { table(nk_layernorm_kernels_for, at: level) }
    static func rmsNorm(at level: InstructionSet) -> nk_rmsnorm_kernels { table(nk_rmsnorm_kernels_for, at: level) }
    static func groupNorm(at level: InstructionSet) -> nk_groupnorm_kernels { table(nk_groupnorm_kernels_for, at: level) }

    private static func table<T>(_ getter: (Int32) -> UnsafePointer<T>?, at level: InstructionSet) -> T {
        guard let table = getter(level.code) else {
            preconditionFailure("NormKit: instruction set \(level) chosen on a CPU without it")
        }
        return table.pointee
    }
}

enum SIMDKernels {
    /// y = x·s, by the kernel layer at the level in force.
    static func scale(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int, _ s: Float) {
        Kernels.layerNorm.scale(x, y, n, s)
    }
}
