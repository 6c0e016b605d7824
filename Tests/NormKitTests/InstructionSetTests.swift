import CNormKernels
@testable import NormKit
import Testing

@Suite("Instruction-set dispatch")
struct InstructionSetTests {
    @Test func detectedLevelHasATableAndHigherLevelsHaveNone() {
        for level in InstructionSet.allCases {
            let table = nk_layernorm_kernels_for(level.code)
            #expect((table != nil) == (level <= InstructionSet.detected), "\(level)")
        }
        #expect(nk_layernorm_kernels_for(-1) == nil)
        #expect(nk_layernorm_kernels_for(3) == nil)
        #expect(InstructionSet.supported.last == InstructionSet.detected)
        #expect(InstructionSet.supported.first == .baseline)
        #if !arch(x86_64)
        #expect(InstructionSet.detected == .baseline)
        #endif
    }

    @Test func scopedOverrideSetsTheCurrentLevel() throws {
        for level in InstructionSet.supported {
            let inside = try InstructionSet.with(level) { InstructionSet.current }
            #expect(inside == level)
        }
        #expect(InstructionSet.current == InstructionSet.processDefault)
    }

    @Test func everySupportedLevelMeetsTheForwardBound() throws {
        let x = Tensor.randomNormal([7, 1000], mean: 0.5, standardDeviation: 3, seed: 11)
        var norm = try LayerNorm(dim: 1000)
        norm.weight = Tensor.randomNormal([1000], mean: 1, standardDeviation: 0.5, seed: 3)
        norm.bias = Tensor.randomNormal([1000], standardDeviation: 0.2, seed: 4)
        for level in InstructionSet.supported {
            let error = try InstructionSet.with(level) { try forwardError(norm, x) }
            #expect(error <= forwardBound, "\(level): error \(error)")
        }
    }

    /// The level and BLAS kernel in force are the ones the environment asks for, so
    /// CI's reruns at each NORMKIT_ISA and OPENBLAS_CORETYPE really ran there. Without
    /// NORMKIT_ISA the process runs at the best level the CPU has.
    @Test func theEnvironmentsLevelAndBLASKernelAreInForce() throws {
        if let wanted = PropertyRun.environment("NORMKIT_ISA"), !wanted.isEmpty {
            #expect(InstructionSet.current == (try InstructionSet(supportedNamed: wanted)), "NORMKIT_ISA=\(wanted)")
            #expect(InstructionSet.processDefault == (try InstructionSet(supportedNamed: wanted)))
        } else {
            #expect(InstructionSet.current == InstructionSet.detected)
        }
        let core = BLAS.coreName
        print("instruction set \(InstructionSet.current), BLAS kernel \(core)")
        #expect(!core.isEmpty && core != "unknown")
        if let wanted = PropertyRun.environment("OPENBLAS_CORETYPE"), !wanted.isEmpty {
            #expect(core.lowercased() == wanted.lowercased(), "OPENBLAS_CORETYPE=\(wanted), OpenBLAS runs \(core)")
        }
    }

    // A CPU without a level is simulated by the `detected` argument: the refusal path
    // is the same code the real check runs.
    @Test func aMissingLevelIsRefused() {
        #expect(throws: NormKitError.self) { try InstructionSet.check(.avx512, detected: .avx2) }
        #expect(throws: NormKitError.self) { try InstructionSet.check(.avx2, detected: .baseline) }
        #expect(throws: Never.self) { try InstructionSet.check(.avx2, detected: .avx512) }
        if InstructionSet.detected < .avx512 {
            #expect(throws: NormKitError.self) { try InstructionSet.with(.avx512) { 0 } }
        }
        #expect(throws: NormKitError.self) { try InstructionSet(supportedNamed: "sse9") }
        #expect((try? InstructionSet(supportedNamed: "BASELINE")) == .baseline)
    }

    @Test func environmentValueIsRefusedWithAMessage() {
        let missing = InstructionSet.fromEnvironment("avx512", detected: .avx2)
        #expect(missing.level == .avx2)
        #expect(missing.warning?.contains("not supported by this CPU") == true)
        let unknown = InstructionSet.fromEnvironment("avx1024", detected: .avx512)
        #expect(unknown.level == .avx512)
        #expect(unknown.warning?.contains("must be one of baseline, avx2, avx512") == true)
        let chosen = InstructionSet.fromEnvironment("avx2", detected: .avx512)
        #expect(chosen.level == .avx2 && chosen.warning == nil)
        let empty = InstructionSet.fromEnvironment("", detected: .avx2)
        #expect(empty.level == .avx2 && empty.warning == nil)
    }
}

@Suite("Instruction-set levels differ only in rounding")
struct InstructionSetRoundingTests {
    @Test(.enabled(if: InstructionSet.supported.count > 1, "SKIP: this CPU has only the baseline level"))
    func levelsActuallyRunDifferentCode() throws {
        let x = Tensor.randomNormal([64, 768], mean: 0.3, standardDeviation: 2, seed: 12)
        var norm = try LayerNorm(dim: 768)
        norm.weight = Tensor.randomNormal([768], mean: 1, standardDeviation: 0.5, seed: 3)
        norm.bias = Tensor.randomNormal([768], standardDeviation: 0.2, seed: 4)
        let base = try InstructionSet.with(.baseline) { try norm(x) }
        let best = try InstructionSet.with(InstructionSet.detected) { try norm(x) }
        // A fused multiply-add rounds once where the baseline rounds twice: some bits differ.
        #expect(base.scalars != best.scalars)
    }
}
