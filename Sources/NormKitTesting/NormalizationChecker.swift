import NormKit
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs a norm through the contracts every NormKit norm shares (as swift-collections'
/// conformance checkers do for its protocols): one checker, every norm.
///
/// - the float64 reference bound of the forward pass (and, when a backward reference
///   is given, of the gradients);
/// - bitwise identity across 1, 2, 3 and 7 threads, for every form (with evidence,
///   NormKit's per-call split probe, that the calls really ran on several threads);
/// - bitwise identity across forms: `forward`, `forward(_:into:)`, the training
///   forward, the raw-buffer forms, and the fused forms against the plain forward of the sum;
/// - the raw-buffer aliasing rules: in place is allowed, a partial overlap throws;
/// - a throwing call leaves the residual stream and the gradients untouched;
/// - typed errors for bad input, output, residual, gradient and statistics shapes.
///
/// The input must be big enough to be split over threads (more than 64 Ki elements, and
/// rows for at least two blocks; the checker reports a split that never happens) and
/// the residual and output gradient shaped like it.
///
/// ```swift
/// let checker = NormalizationChecker(norm: norm, input: x, residual: h, outputGradient: dy,
///                                    rowLength: 768, badInputShapes: [[4, 767]]) { try Reference.layerNormDouble($0) }
/// #expect(checker.violations().isEmpty)
/// ```
public struct NormalizationChecker<Norm: Normalization> {
    /// The gradients a backward reference gives: input, weight and bias (nil for a
    /// parameter the layer lacks).
    public typealias ExpectedGradients = (input: [Double], weight: [Double]?, bias: [Double]?)

    public var norm: Norm
    public var input: Tensor
    public var residual: Tensor
    public var outputGradient: Tensor
    /// The number of elements one statistic covers (a row, a (sample, group)).
    public var rowLength: Int
    /// Input shapes the norm must refuse with a typed error.
    public var badInputShapes: [[Int]]
    /// The forward in float64: one value per input element.
    public var reference: (Tensor) throws -> [Double]
    /// The gradients in float64 for (outputGradient, input), if checked.
    public var backwardReference: ((Tensor, Tensor) throws -> ExpectedGradients)?
    /// The forward bound, relative to `max(1, max|expected|)` per row.
    public var forwardBound = 1e-6
    /// The gradient bound, per row for the input gradient, over the tensor for the parameters'.
    public var gradientBound = 1e-5

    public init(
        norm: Norm, input: Tensor, residual: Tensor, outputGradient: Tensor, rowLength: Int, badInputShapes: [[Int]],
        backwardReference: ((Tensor, Tensor) throws -> ExpectedGradients)? = nil,
        reference: @escaping (Tensor) throws -> [Double]
    ) {
        self.norm = norm
        self.input = input
        self.residual = residual
        self.outputGradient = outputGradient
        self.rowLength = rowLength
        self.badInputShapes = badInputShapes
        self.backwardReference = backwardReference
        self.reference = reference
    }

    /// Every contract the norm breaks, one sentence each; empty when it keeps them all.
    public func violations() -> [String] {
        var found: [String] = []
        do {
            try checkReference(&found)
            let serial = try Parallelism.withThreadCount(1) { try results() }
            try checkForms(serial, &found)
            for threads in [2, 3, 7] {
                // A probe that requires the split: each launch waits for the shared pool
                // (a neighbour may hold it) and for every helper it asked for.
                let probe = SplitProbe(requiresSplit: true)
                let other = try Parallelism.withThreadCount(threads) { try SplitProbe.$current.withValue(probe) { try results() } }
                let split = probe.maxThreads
                if split < 2 { found.append("no call split over \(threads) threads (the identity check is vacuous)") }
                for (name, a) in serial.tensors where !Self.bitwise(a, other.tensors[name]) {
                    found.append("\(name) on \(threads) threads differs from 1 thread")
                }
            }
            try checkThrows(&found)
        } catch {
            found.append("unexpected error: \(error)")
        }
        return found
    }

    // MARK: - The contracts

    private func checkReference(_ found: inout [String]) throws {
        let rows = input.scalarCount / rowLength
        let y = try norm.forward(input).reshaped(to: [rows, rowLength])
        let error = Reference.maxRowError(y, expected: try reference(input))
        if !(error <= forwardBound) { found.append("forward: error \(error) above \(forwardBound)") }
        guard let backwardReference else { return }
        let (_, statistics) = try norm.forwardForTraining(input)
        var g = try norm.backward(outputGradient: outputGradient, input: input, statistics: statistics)
        let expected = try backwardReference(outputGradient, input)
        let dxError = Reference.maxRowError(try g.input.reshaped(to: [rows, rowLength]), expected: expected.input)
        if !(dxError <= gradientBound) { found.append("backward: input gradient error \(dxError) above \(gradientBound)") }
        if let w = expected.weight {
            let e = Reference.maxError(g.weight, expected: w)
            if !(e <= gradientBound) { found.append("backward: weight gradient error \(e) above \(gradientBound)") }
        }
        if let b = expected.bias, let bias = g._withBias({ $0 }) {
            let e = Reference.maxError(bias, expected: b)
            if !(e <= gradientBound) { found.append("backward: bias gradient error \(e) above \(gradientBound)") }
        }
    }

    /// Every form's outputs under the thread count in force, by name.
    private struct Results {
        var tensors: [String: Tensor] = [:]
    }

    private func results() throws -> Results {
        var r = Results()
        r.tensors["forward"] = try norm.forward(input)
        var into = Tensor.zeros(input.shape)
        try norm.forward(input, into: &into)
        r.tensors["forward(into:)"] = into
        let (trained, statistics) = try norm.forwardForTraining(input)
        r.tensors["forwardForTraining"] = trained
        let (fused, sum) = try norm.forward(input, addingResidual: residual)
        r.tensors["forward(addingResidual:)"] = fused
        r.tensors["sum"] = sum
        var stream = residual, fusedInto = Tensor.zeros(input.shape)
        try norm.forward(input, addingTo: &stream, into: &fusedInto)
        r.tensors["forward(addingTo:into:)"] = fusedInto
        r.tensors["forward(addingTo:into:) stream"] = stream
        let (fusedTrained, trainedSum, _) = try norm.forwardForTraining(input, addingResidual: residual)
        r.tensors["forwardForTraining(addingResidual:)"] = fusedTrained
        r.tensors["forwardForTraining(addingResidual:) sum"] = trainedSum
        r.tensors["forward(sum)"] = try norm.forward(sum)
        if let rows = norm as? any RowNormalization {
            try Self.rawForms(rows, input, residual, into: &r)
        }
        var g = try norm.backward(outputGradient: outputGradient, input: input, statistics: statistics)
        r.tensors["backward input"] = g.input
        r.tensors["backward weight"] = g.weight
        if let bias = g._withBias({ $0 }) { r.tensors["backward bias"] = bias }
        var gInto = try norm.zeroGradients(inputShape: input.shape)
        try norm.backward(outputGradient: outputGradient, input: input, statistics: statistics, into: &gInto)
        r.tensors["backward(into:) input"] = gInto.input
        r.tensors["backward(into:) weight"] = gInto.weight
        var gAcc = try norm.zeroGradients(inputShape: input.shape)
        try norm.backward(outputGradient: outputGradient, input: input, statistics: statistics, accumulatingInto: &gAcc)
        r.tensors["backward(accumulatingInto:) input"] = gAcc.input
        r.tensors["backward(accumulatingInto:) weight"] = gAcc.weight
        return r
    }

    private static func rawForms<R: RowNormalization>(_ norm: R, _ input: Tensor, _ residual: Tensor, into r: inout Results) throws {
        let x = input.scalars
        var h = residual.scalars, y = [Float](repeating: 0, count: x.count)
        try x.withUnsafeBufferPointer { xp in try y.withUnsafeMutableBufferPointer { try norm.forward(xp, into: $0) } }
        r.tensors["forward(buffer)"] = try Tensor(shape: input.shape, scalars: y)
        var inPlace = x
        try inPlace.withUnsafeMutableBufferPointer { p in try norm.forward(UnsafeBufferPointer(p), into: p) }
        r.tensors["forward(buffer) in place"] = try Tensor(shape: input.shape, scalars: inPlace)
        try x.withUnsafeBufferPointer { xp in
            try h.withUnsafeMutableBufferPointer { hp in
                try y.withUnsafeMutableBufferPointer { try norm.forward(xp, addingTo: hp, into: $0) }
            }
        }
        r.tensors["forward(buffer, addingTo:into:)"] = try Tensor(shape: input.shape, scalars: y)
        r.tensors["forward(buffer, addingTo:into:) stream"] = try Tensor(shape: input.shape, scalars: h)
        // The stream replaced by its norm: output is the residual's memory.
        var stream = residual.scalars
        try x.withUnsafeBufferPointer { xp in
            try stream.withUnsafeMutableBufferPointer { hp in try norm.forward(xp, addingTo: hp, into: hp) }
        }
        r.tensors["forward(buffer, addingTo: h, into: h)"] = try Tensor(shape: input.shape, scalars: stream)
    }

    private func checkForms(_ r: Results, _ found: inout [String]) throws {
        let t = r.tensors
        func same(_ a: String, _ b: String) {
            if !Self.bitwise(t[a], t[b]) { found.append("\(a) differs from \(b)") }
        }
        same("forward(into:)", "forward")
        same("forwardForTraining", "forward")
        same("forward(addingResidual:)", "forward(sum)")
        same("forward(addingTo:into:)", "forward(sum)")
        same("forward(addingTo:into:) stream", "sum")
        same("forwardForTraining(addingResidual:)", "forward(sum)")
        same("forwardForTraining(addingResidual:) sum", "sum")
        let floatSum = zip(input.scalars, residual.scalars).map { $0 + $1 }
        if !Self.bitwise(t["sum"], try Tensor(shape: input.shape, scalars: floatSum)) {
            found.append("the fused sum is not the float sum input + residual")
        }
        if t["forward(buffer)"] != nil {
            same("forward(buffer)", "forward")
            same("forward(buffer) in place", "forward")
            same("forward(buffer, addingTo:into:)", "forward(sum)")
            same("forward(buffer, addingTo:into:) stream", "sum")
            same("forward(buffer, addingTo: h, into: h)", "forward(sum)")
        }
        same("backward(into:) input", "backward input")
        same("backward(into:) weight", "backward weight")
        // Accumulating into zeros gives 0 + g in each element: g's bits, but for a -0 in g,
        // which the addition makes +0 (as a residual stream's sum would).
        for part in ["input", "weight"] {
            let accumulated = "backward(accumulatingInto:) \(part)", plain = "backward \(part)"
            let expected = try t[plain].map { g in try Tensor(shape: g.shape, scalars: g.scalars.map { 0 + $0 }) }
            if !Self.bitwise(t[accumulated], expected) { found.append("\(accumulated) differs from 0 + \(plain)") }
        }
    }

    private func checkThrows(_ found: inout [String]) throws {
        func expectThrow(_ what: String, _ body: () throws -> Void) {
            do {
                try body()
                found.append("\(what) did not throw")
            } catch {
                if !(error is NormKitError) { found.append("\(what) threw \(error), not a NormKitError") }
            }
        }
        for shape in badInputShapes {
            expectThrow("forward of shape \(shape)") { _ = try norm.forward(Tensor.zeros(shape)) }
            expectThrow("forwardForTraining of shape \(shape)") { _ = try norm.forwardForTraining(Tensor.zeros(shape)) }
        }
        // A wrong output or residual shape leaves the stream untouched.
        let wrong = Tensor.zeros([input.scalarCount + 1])
        var stream = residual, output = Tensor.zeros(input.shape), badOutput = wrong
        expectThrow("forward(addingTo:into:) with a wrong output shape") {
            try norm.forward(input, addingTo: &stream, into: &badOutput)
        }
        var badStream = wrong
        expectThrow("forward(addingTo:into:) with a wrong residual shape") {
            try norm.forward(input, addingTo: &badStream, into: &output)
        }
        if !Self.bitwise(stream, residual) || !Self.bitwise(badStream, wrong) {
            found.append("a throwing fused call changed the residual stream")
        }
        expectThrow("forward(into:) with a wrong output shape") { try norm.forward(input, into: &badOutput) }
        expectThrow("forward(addingResidual:) with a wrong residual shape") { _ = try norm.forward(input, addingResidual: wrong) }
        // Backward: wrong gradient, statistics and gradient-buffer shapes; nothing changes.
        let (_, statistics) = try norm.forwardForTraining(input)
        expectThrow("backward with a wrong output gradient shape") {
            _ = try norm.backward(outputGradient: wrong, input: input, statistics: statistics)
        }
        var gradients = try norm.zeroGradients(inputShape: input.shape)
        gradients.weight = wrong
        let before = gradients
        expectThrow("backward(into:) with a wrong weight gradient shape") {
            try norm.backward(outputGradient: outputGradient, input: input, statistics: statistics, into: &gradients)
        }
        expectThrow("backward(accumulatingInto:) with a wrong weight gradient shape") {
            try norm.backward(outputGradient: outputGradient, input: input, statistics: statistics, accumulatingInto: &gradients)
        }
        if gradients != before { found.append("a throwing backward changed the gradients") }
        var doubled = input.shape
        doubled[0] *= 2
        let (_, statisticsOfOtherShape) = try norm.forwardForTraining(
            try Tensor(shape: doubled, scalars: input.scalars + input.scalars))
        expectThrow("backward with statistics of another shape") {
            _ = try norm.backward(outputGradient: outputGradient, input: input, statistics: statisticsOfOtherShape)
        }
    }

    /// Same shape and the same bits in every element (nil matches nothing).
    static func bitwise(_ a: Tensor?, _ b: Tensor?) -> Bool {
        guard let a, let b, a.shape == b.shape else { return false }
        return zip(a.scalars, b.scalars).allSatisfy { $0.bitPattern == $1.bitPattern }
    }
}
