@testable import NormKit
import Testing

/// The RMSNorm and fused passes really split over the worker pool (and still give the
/// one-thread bits, which RMSNormTests and FusedAddNormTests check).
@Suite("RMSNorm and fused passes use the worker pool")
struct RMSParallelTests {
    /// Runs `body` on 2 threads under a probe that requires the split.
    private func helpersRun(_ what: String, _ body: () throws -> Void) throws {
        try Split.run(threads: 2, what, body)
    }

    @Test func everyPassSplits() throws {
        let shape = [256, 768]
        #expect(RowDriver.workers(rows: 256, dim: 768) >= 1)
        let x = Tensor.randomNormal(shape, seed: 1), dy = Tensor.randomNormal(shape, seed: 2)
        let rms = try RMSNorm(dim: 768)
        let ln = try LayerNorm(dim: 768)
        var y = Tensor.zeros(shape), h = Tensor.randomNormal(shape, seed: 3)
        try helpersRun("RMSNorm forward") { try rms.forward(x, into: &y) }
        let s = try rms.forwardForTraining(x).statistics
        try helpersRun("RMSNorm backward") { _ = try rms.backward(outputGradient: dy, input: x, statistics: s) }
        try helpersRun("RMSNorm fused") { try rms.forward(x, addingTo: &h, into: &y) }
        try helpersRun("LayerNorm fused") { try ln.forward(x, addingTo: &h, into: &y) }
    }
}
