// Bad and extreme input: what every one of them gets. Each test here is a row (or
// several rows) of docs/reliability.md; keep the two in step.
//
// Three kinds of test:
// * a thrown NormKitError whose message is pinned word for word;
// * a defined output (exact bits, or the 1e-6 contract against Reference);
// * exit tests for what traps today. A trap that is documented (a precondition of a
//   non-throwing API) is expected to trap; one that is a bug is wrapped in
//   `withKnownIssue`, so the test passes while the bug is there and FAILS once it is
//   fixed ("known issue was not recorded"), prompting whoever fixed it to flip it.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
@testable import NormKit
import NormKitTesting
import Testing

/// One bad input and the exact error message it must produce.
struct BadInput: Sendable, CustomTestStringConvertible {
    let name: String
    let message: String
    let run: @Sendable () throws -> Void

    var testDescription: String { name }

    static let all: [BadInput] = [
        // Tensor shapes and counts
        BadInput(name: "count below shape product", message: "shape [2, 3] needs 6 scalars, got 5") {
            _ = try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5])
        },
        BadInput(name: "count above shape product", message: "shape [2] needs 2 scalars, got 3") {
            _ = try Tensor(shape: [2], scalars: [1, 2, 3])
        },
        BadInput(name: "negative dimension", message: "dimensions must be non-negative, got shape [2, -1]") {
            _ = try Tensor(shape: [2, -1], scalars: [])
        },
        BadInput(name: "Int.min dimension", message: "dimensions must be non-negative, got shape [\(Int.min)]") {
            _ = try Tensor(validatingShape: [Int.min], repeating: 0)
        },
        BadInput(name: "rank 0", message: "a tensor needs at least one dimension (rank >= 1), got shape []") {
            _ = try Tensor(shape: [], scalars: [1])
        },
        BadInput(name: "shape product overflows Int",
                 message: "the element count of shape [\(Int.max / 2), 3] overflows Int") {
            _ = try Tensor(shape: [Int.max / 2, 3], scalars: [])
        },
        BadInput(name: "shape product overflows Int (validating init)",
                 message: "the element count of shape [4294967296, 4294967296] overflows Int") {
            _ = try Tensor(validatingShape: [1 << 32, 1 << 32], repeating: 0)
        },
        BadInput(name: "reshape to another count", message: "cannot reshape [2, 3] (6 elements) to [4, 2] (8 elements)") {
            _ = try Tensor.zeros([2, 3]).reshaped(to: [4, 2])
        },
        BadInput(name: "reshape with -1 (no inference)", message: "dimensions must be non-negative, got shape [-1, 6]") {
            _ = try Tensor.zeros([2, 3]).reshaped(to: [-1, 6])
        },
        BadInput(name: "reshape to an overflowing shape",
                 message: "the element count of shape [\(Int.max), 2] overflows Int") {
            _ = try Tensor.zeros([2, 3]).reshaped(to: [Int.max, 2])
        },
        BadInput(name: "reshape to rank 0", message: "a tensor needs at least one dimension (rank >= 1), got shape []") {
            _ = try Tensor.zeros([1]).reshaped(to: [])
        },
        // LayerNorm dim and eps
        BadInput(name: "dim 0", message: "a norm layer's dim must be >= 1, got 0") { _ = try LayerNorm(dim: 0) },
        BadInput(name: "dim -1", message: "a norm layer's dim must be >= 1, got -1") { _ = try LayerNorm(dim: -1) },
        BadInput(name: "dim Int.min", message: "a norm layer's dim must be >= 1, got \(Int.min)") {
            _ = try LayerNorm(dim: .min)
        },
        BadInput(name: "eps 0", message: "a norm layer's eps must be finite and > 0, got 0.0") {
            _ = try LayerNorm(dim: 4, eps: 0)
        },
        BadInput(name: "eps -0", message: "a norm layer's eps must be finite and > 0, got -0.0") {
            _ = try LayerNorm(dim: 4, eps: -0.0)
        },
        BadInput(name: "eps negative", message: "a norm layer's eps must be finite and > 0, got -1e-05") {
            _ = try LayerNorm(dim: 4, eps: -1e-5)
        },
        BadInput(name: "eps negative subnormal", message: "a norm layer's eps must be finite and > 0, got -1e-45") {
            _ = try LayerNorm(dim: 4, eps: -.leastNonzeroMagnitude)
        },
        BadInput(name: "eps NaN", message: "a norm layer's eps must be finite and > 0, got nan") {
            _ = try LayerNorm(dim: 4, eps: .nan)
        },
        BadInput(name: "eps +inf", message: "a norm layer's eps must be finite and > 0, got inf") {
            _ = try LayerNorm(dim: 4, eps: .infinity)
        },
        BadInput(name: "eps -inf", message: "a norm layer's eps must be finite and > 0, got -inf") {
            _ = try LayerNorm(dim: 4, eps: -.infinity)
        },
        // forward: input, weight, bias, output shapes
        BadInput(name: "input last dim differs",
                 message: "input's last dimension must be 768 (the layer's dim), got shape [2, 4, 512]") {
            _ = try LayerNorm(dim: 768)(Tensor.zeros([2, 4, 512]))
        },
        BadInput(name: "input last dim 0",
                 message: "input's last dimension must be 8 (the layer's dim), got shape [5, 0]") {
            _ = try LayerNorm(dim: 8)(Tensor.zeros([5, 0]))
        },
        BadInput(name: "input transposed",
                 message: "input's last dimension must be 8 (the layer's dim), got shape [8, 3]") {
            _ = try LayerNorm(dim: 8)(Tensor.zeros([8, 3]))
        },
        BadInput(name: "weight too long", message: "weight must have shape [8], got [9]") {
            var n = try LayerNorm(dim: 8); n.weight = Tensor.ones([9]); _ = try n(Tensor.zeros([2, 8]))
        },
        BadInput(name: "weight [1, dim]", message: "weight must have shape [8], got [1, 8]") {
            var n = try LayerNorm(dim: 8); n.weight = Tensor.ones([1, 8]); _ = try n(Tensor.zeros([2, 8]))
        },
        BadInput(name: "weight empty", message: "weight must have shape [8], got [0]") {
            var n = try LayerNorm(dim: 8); n.weight = Tensor.ones([0]); _ = try n(Tensor.zeros([2, 8]))
        },
        BadInput(name: "bias wrong shape", message: "bias must have shape [8], got [2, 4]") {
            var n = try LayerNorm(dim: 8); n.bias = Tensor.zeros([2, 4]); _ = try n(Tensor.zeros([2, 8]))
        },
        BadInput(name: "bad weight with an empty batch", message: "weight must have shape [8], got [9]") {
            var n = try LayerNorm(dim: 8); n.weight = Tensor.ones([9]); _ = try n(Tensor.zeros([0, 8]))
        },
        BadInput(name: "output shape differs", message: "output must have shape [7, 100], got [7, 99]") {
            var out = Tensor.zeros([7, 99]); try LayerNorm(dim: 100).forward(Tensor.zeros([7, 100]), into: &out)
        },
        BadInput(name: "output same count, other shape", message: "output must have shape [7, 100], got [700]") {
            var out = Tensor.zeros([700]); try LayerNorm(dim: 100).forward(Tensor.zeros([7, 100]), into: &out)
        },
        BadInput(name: "Reference weight wrong shape", message: "weight must have shape [4], got [3]") {
            _ = try Reference.layerNorm(Tensor.zeros([2, 4]), weight: Tensor.ones([3]))
        },
    ]
}

@Suite("Reliability: bad and extreme input", .tags(.reliability))
struct ReliabilityTests {
    // MARK: thrown errors

    /// Every bad input throws a NormKitError with the documented message (which names
    /// what was expected and what came).
    @Test(arguments: BadInput.all)
    func badInputThrowsTheDocumentedError(_ bad: BadInput) {
        do {
            try bad.run()
            Issue.record("\(bad.name): did not throw")
        } catch let error as NormKitError {
            #expect(error.description == bad.message)
        } catch {
            Issue.record("\(bad.name): threw \(error), not a NormKitError")
        }
    }

    // MARK: empty tensors

    @Test func emptyTensorsGiveEmptyOutputs() throws {
        let norm = try LayerNorm(dim: 5)
        for shape in [[0, 5], [3, 0, 5], [0, 0, 5], [0, 1, 1, 5]] {
            let x = Tensor.zeros(shape)
            let y = try norm(x)
            #expect(y.shape == shape && y.scalarCount == 0)
            var out = Tensor.zeros(shape)
            try norm.forward(x, into: &out)
            #expect(out.shape == shape)
            #expect(try Reference.layerNormDouble(x).isEmpty)
            #expect(Reference.maxRowError(y, expected: []) == 0)
        }
        #expect(Tensor.zeros([0, 5]).description == "Tensor([], shape: [0, 5])")
        // A zero dimension anywhere makes a valid empty tensor, even next to a huge one.
        #expect(try Tensor(shape: [0, Int.max], scalars: []).scalarCount == 0)
        #expect(try Tensor(shape: [0, 2, 1 << 62], scalars: []).scalarCount == 0)
    }

    // MARK: dim = 1

    /// With one feature every row is constant: x - mean = 0 exactly, so y is exactly
    /// the bias, whatever the magnitude of x; NaN and ±inf give NaN.
    @Test func dimOneGivesExactlyTheBias() throws {
        var norm = try LayerNorm(dim: 1)
        norm.bias = try Tensor(shape: [1], scalars: [0.25])
        norm.weight = try Tensor(shape: [1], scalars: [-3])
        let values: [Float] = [0, -0.0, 1, -.leastNonzeroMagnitude, .leastNonzeroMagnitude, .greatestFiniteMagnitude, -.greatestFiniteMagnitude, 123.456]
        let y = try norm(try Tensor(shape: [values.count, 1], scalars: values))
        #expect(y.scalars == [Float](repeating: 0.25, count: values.count))
        let bad = try norm(try Tensor(shape: [3, 1], scalars: [.nan, .infinity, -.infinity]))
        #expect(countWhere(bad.scalars) { !$0.isNaN } == 0)
    }

    // MARK: tiny, subnormal, huge and maximal magnitudes

    /// 10^e·randn and 10^e + 10^(e-4)·randn for every decade Float has: within 1e-6.
    @Test(arguments: [17, 768])
    func everyDecadeOfMagnitude(dim: Int) throws {
        let norm = try LayerNorm(dim: dim)
        let noise = Tensor.randomNormal([dim], seed: 77).scalars
        for e in -45...38 {
            let s = pow(10, Double(e))
            let scaled = noise.map { finiteFloat(s * Double($0)) }
            let offset = noise.map { finiteFloat(s + s * 1e-4 * Double($0)) }
            for (name, row) in [("10^\(e)·randn", scaled), ("10^\(e) + 10^\(e - 4)·randn", offset)] {
                let x = try Tensor(shape: [dim], scalars: row)
                let error = try forwardError(norm, x)
                #expect(error <= forwardBound, "\(name), dim \(dim): error \(error)")
                #expect(countWhere(try norm(x).scalars) { !$0.isFinite } == 0, "\(name), dim \(dim): non-finite output")
            }
        }
    }

    /// Rows of subnormal values (down to the smallest, 2^-149), alone and mixed with zeros.
    @Test func subnormalRows() throws {
        let tiny = Float.leastNonzeroMagnitude
        let rows: [[Float]] = [
            [tiny, 0, 0, 0, -tiny],
            [tiny, tiny, tiny, 2 * tiny],
            (0..<33).map { Float($0 % 5) * tiny },
            (0..<768).map { Float.leastNormalMagnitude * Float($0 % 7) / 8 },
        ]
        for row in rows {
            for eps: Float in [1e-5, .leastNonzeroMagnitude, .leastNormalMagnitude] {
                let norm = try LayerNorm(dim: row.count, eps: eps)
                let x = try Tensor(shape: [row.count], scalars: row)
                let error = try forwardError(norm, x)
                #expect(error <= forwardBound, "\(row.prefix(5))…, eps \(eps): error \(error)")
            }
        }
    }

    /// Rows at the top of the Float range: sums and squares overflow Float, and
    /// x - mean can too ([-max, max]); the output is finite and within 1e-6.
    @Test func maximalMagnitudeRows() throws {
        let m = Float.greatestFiniteMagnitude
        let rows: [[Float]] = [
            [m, -m],
            [-m, m, 0, 1],
            (0..<768).map { $0 % 2 == 0 ? m : -m },
            (0..<768).map { $0 == 5 ? m / 3 : m },  // sum overflows, one element differs
            (0..<17).map { $0 % 3 == 0 ? -m : m * 0.75 },
        ]
        for row in rows {
            let norm = try LayerNorm(dim: row.count)
            let x = try Tensor(shape: [row.count], scalars: row)
            let y = try norm(x)
            #expect(countWhere(y.scalars) { !$0.isFinite } == 0, "\(row.prefix(4))…: non-finite output")
            let error = try forwardError(norm, x)
            #expect(error <= forwardBound, "\(row.prefix(4))…: error \(error)")
        }
        let pair = try LayerNorm(dim: 2)(try Tensor(shape: [2], scalars: [m, -m]))
        #expect(abs(pair.scalars[0] - 1) <= 1e-6 && abs(pair.scalars[1] + 1) <= 1e-6)
    }

    // MARK: eps at the edges of the Float range

    /// eps may be any finite Float > 0: a subnormal one, the smallest normal one, or
    /// Float.greatestFiniteMagnitude. Checked against the reference relative to the
    /// output's own size, because with a huge eps every output is tiny and the
    /// contract's absolute floor (max(1, ·)) would check nothing.
    @Test(arguments: [Float.leastNonzeroMagnitude, .leastNormalMagnitude, 1e-30, 1, 1e30, .greatestFiniteMagnitude])
    func epsAtTheEdges(eps: Float) throws {
        let norm = try LayerNorm(dim: 33, eps: eps)
        #expect(norm.eps == eps)
        for name in HardRows.names {
            let row = HardRows.make(name, dim: 33)
            let x = try Tensor(shape: [33], scalars: row)
            let y = try norm(x)
            let expected = try Reference.layerNormDouble(x, eps: eps)
            let scale = expected.map(\.magnitude).max() ?? 0
            let diff = zip(y.scalars, expected).map { abs(Double($0) - $1) }.max() ?? 0
            #expect(countWhere(y.scalars) { !$0.isFinite } == 0, "\(name), eps \(eps): non-finite output")
            // 1e-6 of the row's largest output, plus the float rounding floor at subnormal outputs.
            #expect(diff <= 1e-6 * scale + 0x1p-149, "\(name), eps \(eps): diff \(diff), scale \(scale)")
        }
        // A constant row is exactly the bias for every eps.
        #expect(try norm(Tensor(shape: [2, 33], repeating: 5)).scalars == [Float](repeating: 0, count: 66))
    }

    // MARK: NaN and infinity

    /// A NaN or ±inf anywhere in a row (first element, SIMD body, scalar tail, past a
    /// BLAS chunk) makes exactly that row NaN; every other row keeps its bits.
    @Test(arguments: [1, 16, 17, 8193])
    func nonFiniteInputPoisonsOnlyItsRow(dim: Int) throws {
        var g = RowGenerator(seed: UInt64(dim))
        let norm = try LayerNorm(dim: dim)
        let clean = try Tensor(shape: [3, dim], scalars: (0..<3).flatMap { _ in g.row(.gaussian, dim: dim) })
        let alone = try norm(clean).scalars
        for bad: Float in [.nan, .infinity, -.infinity, Float(nan: 0x1234, signaling: false)] {
            for position in Set([0, dim / 2, dim - 1, min(dim - 1, 16)]) {
                var x = clean
                x.withUnsafeMutableBufferPointer { $0[dim + position] = bad }
                let y = try norm(x).scalars
                #expect(countWhere(rowSlice(y, 1, dim: dim)) { !$0.isNaN } == 0, "\(bad) at \(position), dim \(dim)")
                #expect(bitwiseMismatch(rowSlice(y, 0, dim: dim), rowSlice(alone, 0, dim: dim)) == nil)
                #expect(bitwiseMismatch(rowSlice(y, 2, dim: dim), rowSlice(alone, 2, dim: dim)) == nil)
            }
        }
        // +inf and -inf in one row (their sum is NaN, not a large number).
        if dim >= 2 {
            var x = clean
            x.withUnsafeMutableBufferPointer { $0[0] = .infinity; $0[1] = -.infinity }
            #expect(countWhere(rowSlice(try norm(x).scalars, 0, dim: dim)) { !$0.isNaN } == 0)
        }
    }

    /// NaN or ±inf in weight or bias follows IEEE arithmetic element by element, as the
    /// reference does: NaN weight or bias → NaN at that feature only; ±inf weight →
    /// ±inf (NaN where x - mean is exactly 0); a weight of Float.max overflows to ±inf.
    @Test func nonFiniteParametersFollowIEEEPerFeature() throws {
        let dim = 17
        var w = [Float](repeating: 1, count: dim), b = [Float](repeating: 0, count: dim)
        w[3] = .nan; w[5] = .infinity; w[7] = -.infinity; w[8] = .infinity; w[16] = .greatestFiniteMagnitude
        b[11] = .nan; b[13] = .infinity; b[14] = -.infinity
        var norm = try LayerNorm(dim: dim)
        norm.weight = try Tensor(shape: [dim], scalars: w)
        norm.bias = try Tensor(shape: [dim], scalars: b)
        // x_i = i - 8: mean exactly 0, so x_8 - mean is exactly 0 and 0·inf = NaN.
        let x = try Tensor(shape: [dim], scalars: (0..<dim).map { Float($0 - 8) })
        let y = try norm(x).scalars
        let expected = try Reference.layerNormDouble(x, weight: norm.weight, bias: norm.bias)
        for i in 0..<dim {
            let e = Float(expected[i])
            if e.isNaN {
                #expect(y[i].isNaN, "feature \(i): expected NaN, got \(y[i])")
            } else if e.isInfinite {
                #expect(y[i] == e, "feature \(i): expected \(e), got \(y[i])")
            } else {
                #expect(abs(Double(y[i]) - expected[i]) <= forwardBound * max(1, abs(expected[i])), "feature \(i)")
            }
        }
        #expect(y[3].isNaN && y[8].isNaN && y[11].isNaN && y[16] == .infinity && y[13] == .infinity)
    }

    /// A constant row under a weight holding NaN or ±inf: 0·NaN = 0·inf = NaN there, as
    /// in IEEE arithmetic, the reference and PyTorch; finite weights still give exactly
    /// the bias. (Once a known issue: the constant-row shortcut copied the bias.)
    @Test func constantRowWithNonFiniteWeight() throws {
        var norm = try LayerNorm(dim: 4)
        norm.weight = try Tensor(shape: [4], scalars: [.infinity, .nan, 1, 1])
        let y = try norm(Tensor(shape: [1, 4], repeating: 2)).scalars
        #expect(y[2] == 0 && y[3] == 0)
        #expect(y[0].isNaN && y[1].isNaN, "got \(y)")
    }

    // MARK: long rows and BLAS's 32-bit lengths

    /// Rows longer than BLAS.maxChunk (8192), so every BLAS call is split and summed
    /// across chunks: within 1e-6 on random rows, random affine, and the hard rows
    /// that stay inside the contract at this length.
    @Test(arguments: [8192, 8193, 3 * 8192 + 5])
    func rowsLongerThanOneBLASChunk(dim: Int) throws {
        var norm = try LayerNorm(dim: dim)
        norm.weight = Tensor.randomNormal([dim], mean: 1, standardDeviation: 0.5, seed: 1)
        norm.bias = Tensor.randomNormal([dim], standardDeviation: 0.2, seed: 2)
        let x = Tensor.randomNormal([3, dim], mean: 0.5, standardDeviation: 3, seed: 3)
        let error = try forwardError(norm, x)
        #expect(error <= forwardBound, "dim \(dim): error \(error)")
        for name in ["100 + 0.01*randn", "1e6 + randn", "1e30*randn", "subnormal", "constant", "one outlier"] {
            let row = try Tensor(shape: [dim], scalars: HardRows.make(name, dim: dim))
            let e = try forwardError(norm, row)
            #expect(e <= forwardBound, "\(name), dim \(dim): error \(e)")
        }
    }

    /// BLAS takes 32-bit lengths; NormKit's wrappers split longer vectors into chunks.
    /// Checked on vectors longer than Int32.max and than UInt32.max without 16 GiB of
    /// RAM: an anonymous mapping reads as zeros and costs no memory until written, so
    /// we write a few marked pages (the first element, both sides of 2^31 and of 2^32,
    /// the last) and check the sums see each of them exactly once. A length truncated
    /// to 32 bits would miss some marks, or sum nothing.
    @Test func blasWrappersHandleLengthsBeyond32Bits() throws {
        let count = (1 << 32) + 4099
        let bytes = count * MemoryLayout<Float>.stride
        let raw = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let raw, raw != MAP_FAILED else {
            Issue.record("mmap of \(bytes) bytes failed; cannot check 32-bit lengths here")
            return
        }
        defer { munmap(raw, bytes) }
        // Read faults on untouched pages map the shared zero page; with transparent huge
        // pages they map the huge zero page, 512 times fewer faults (advice only).
        _ = madvise(raw, bytes, MADV_HUGEPAGE)
        let x = raw.bindMemory(to: Float.self, capacity: count)
        let marks: [(Int, Float)] = [(0, 1), ((1 << 31) - 1, 2), (1 << 31, 4), ((1 << 32) - 1, 8), (1 << 32, 16), (count - 1, 32)]
        for (i, v) in marks { x[i] = v }
        let sum = BLAS.ones.withUnsafeBufferPointer { BLAS.dotRepeating(count, x, $0.baseAddress!) }
        let squares = BLAS.dot(count, x, x)
        #expect(sum == 63)
        #expect(squares == marks.reduce(0) { $0 + Double($1.1 * $1.1) })
        // And the row just past Int32.max alone, starting at an odd offset.
        let tail = BLAS.dot((1 << 31) + 2, x + 1, x + 1)
        #expect(tail == 4 + 16)
    }

    // MARK: aliasing

    /// forward(x, into: &x): the input is a copy, so copy-on-write gives the output its
    /// own storage and the result is the same as forward(x).
    @Test func forwardIntoItsOwnInput() throws {
        let norm = try LayerNorm(dim: 31)
        var x = Tensor.randomNormal([4, 31], seed: 8)
        let expected = try norm(x)
        try norm.forward(x, into: &x)
        #expect(bitwiseMismatch(x.scalars, expected.scalars) == nil)
    }

    // MARK: accuracy on long rows of equal terms

    /// Rows of two alternating values, 0 and c: a single float sdot over the row adds
    /// thousands of identical squares per accumulator, and their rounding errors all go
    /// one way (4.2e-6 at dim 8501 when a row was one sdot call). BLAS.dot sums rows
    /// longer than 1024 in blocks of 512, added in Double, which keeps them in bound.
    @Test(arguments: [(1855, Float(33.618683)), (4099, 1.9798675), (8501, 1.9798675)])
    func alternatingZeroAndValueAtLargeDims(dim: Int, c: Float) throws {
        let x = try Tensor(shape: [dim], scalars: (0..<dim).map { $0 % 2 == 1 ? c : 0 })
        let error = try forwardError(try LayerNorm(dim: dim), x)
        #expect(error <= forwardBound, "dim \(dim), c \(c): error \(error)")
    }

    /// One huge element among zeros (careful path) at dims around 5000: the same effect
    /// in the careful path's sdot of the centred row, where n-1 equal squares are added
    /// to the outlier's (1.5e-6 at dim 5199, 3e38, before blocked sums).
    @Test(arguments: [(5199, Float(3e38)), (6000, 1e20)])
    func oneHugeElementAmongZeros(dim: Int, big: Float) throws {
        var row = [Float](repeating: 0, count: dim)
        row[0] = big
        let error = try forwardError(try LayerNorm(dim: dim), try Tensor(shape: [dim], scalars: row))
        #expect(error <= forwardBound, "dim \(dim), \(big): error \(error)")
    }

    // MARK: shape products

    /// Whether a shape holding a 0 is valid does not depend on the order of its
    /// dimensions: [0, 2, 2^62] and [2, 2^62, 0] are both valid empty tensors.
    @Test func zeroSizedShapeOrderDoesNotMatter() throws {
        #expect(try Tensor(shape: [0, 2, 1 << 62], scalars: []).scalarCount == 0)
        #expect(try Tensor(shape: [2, 1 << 62, 0], scalars: []).scalarCount == 0)
        #expect(try Tensor(shape: [Int.max, Int.max, 0], scalars: []).shape == [Int.max, Int.max, 0])
    }

    // MARK: traps (exit tests)

    /// Documented: the non-throwing constructors have a precondition on the shape (the
    /// issue-2 API fixes their signatures); bad shapes trap. Use
    /// Tensor(validatingShape:repeating:) for shapes that come from data.
    @Test(.tags(.exitTest))
    func nonThrowingConstructorsTrapOnBadShapes() async {
        await #expect(processExitsWith: .failure) { _ = Tensor.zeros([-1]) }
        await #expect(processExitsWith: .failure) { _ = Tensor.ones([2, -3]) }
        await #expect(processExitsWith: .failure) { _ = Tensor(shape: [], repeating: 1) }
        await #expect(processExitsWith: .failure) { _ = Tensor.zeros([Int.max / 2, 3]) }
        await #expect(processExitsWith: .failure) { _ = Tensor.randomNormal([-1], seed: 1) }
        await #expect(processExitsWith: .failure) { _ = Tensor.randomUniform([4, -4], seed: 1) }
    }

    /// The throwing initialisers throw (never trap) on a shape whose product fits Int
    /// but that no process could allocate: more than 2^45 floats (128 TiB).
    @Test func validatingInitThrowsOnUnallocatableShapes() {
        #expect(throws: NormKitError.tooLarge(shape: [Int.max], elementCount: Int.max)) {
            try Tensor(validatingShape: [Int.max], repeating: 0)
        }
        #expect(throws: NormKitError.tooLarge(shape: [1 << 61], elementCount: 1 << 61)) {
            try Tensor(validatingShape: [1 << 61], repeating: 0)
        }
        #expect(throws: NormKitError.tooLarge(shape: [1 << 23, 1 << 23], elementCount: 1 << 46)) {
            try Tensor(validatingShape: [1 << 23, 1 << 23], repeating: 0)
        }
        #expect(throws: NormKitError.tooLarge(shape: [1 << 46], elementCount: 1 << 46)) {
            try Tensor(shape: [1 << 46], scalars: [])
        }
    }

    /// LayerNorm(dim:) throws for a dim whose weight no process could allocate.
    @Test func layerNormInitThrowsOnUnallocatableDim() {
        #expect(throws: NormKitError.tooLarge(shape: [Int.max], elementCount: Int.max)) { try LayerNorm(dim: Int.max) }
        #expect(throws: NormKitError.tooLarge(shape: [1 << 60], elementCount: 1 << 60)) { try LayerNorm(dim: 1 << 60) }
    }
}

// MARK: - Sanitizer canaries

/// A data race the canary creates on purpose (never touched unless enabled).
nonisolated(unsafe) private var canaryCounter = 0

/// Deliberate bugs that only a sanitizer sees, each enabled by
/// NORMKIT_SANITIZER_CANARY. `.ci/run` runs them after each sanitized test run and
/// requires the run to FAIL, proving that a sanitizer report fails CI. Skipped in
/// every ordinary run.
@Suite("Sanitizer canaries")
struct SanitizerCanaryTests {
    static var canary: String? { PropertyRun.environment("NORMKIT_SANITIZER_CANARY") }

    /// Two threads increment one global without synchronisation; the count is not
    /// checked, so only ThreadSanitizer can fail this test.
    @Test(.enabled(if: canary == "race", "SKIP: a canary, run only by .ci/run with NORMKIT_SANITIZER_CANARY=race under --sanitize=thread"))
    func deliberateDataRace() {
        runOnThreads(2) { _ in
            for _ in 0..<1000 { canaryCounter += 1 }
        }
    }

    /// Writes one element past a heap allocation; only AddressSanitizer notices.
    @Test(.enabled(if: canary == "overflow", "SKIP: a canary, run only by .ci/run with NORMKIT_SANITIZER_CANARY=overflow under --sanitize=address"))
    func deliberateHeapOverflow() {
        let p = UnsafeMutablePointer<Float>.allocate(capacity: 4)
        defer { p.deallocate() }
        p.initialize(repeating: 0, count: 4)
        (p + Int(getpid() >= 0 ? 4 : 0)).pointee = 1
    }

    /// Loses the last reference to an allocation; LeakSanitizer reports it at exit.
    @Test(.enabled(if: canary == "leak", "SKIP: a canary, run only by .ci/run with NORMKIT_SANITIZER_CANARY=leak under --sanitize=address"))
    func deliberateLeak() {
        final class Lost { let bytes = [UInt8](repeating: 7, count: 4096) }
        _ = Unmanaged.passRetained(Lost())
    }
}
