import NormKit
import Testing

@Suite("Tensor")
struct TensorTests {
    @Test func shapeAndScalars() throws {
        let t = try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
        #expect(t.shape == [2, 3])
        #expect(t.scalarCount == 6)
        #expect(t.rank == 2)
        #expect(t.scalar(at: [1, 2]) == 6)
        #expect(t.scalar(at: [2, 0]) == nil)
        #expect(t.scalar(at: [0]) == nil)
    }

    @Test func zeroDimensionsAreAllowed() throws {
        let t = try Tensor(shape: [0, 768], scalars: [])
        #expect(t.scalarCount == 0)
        #expect(Tensor.zeros([3, 0, 2]).scalarCount == 0)
    }

    @Test func countMismatchThrows() {
        #expect(throws: NormKitError.scalarCountMismatch(shape: [2, 3], expected: 6, actual: 5)) {
            try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5])
        }
    }

    @Test func negativeDimensionThrows() {
        #expect(throws: NormKitError.negativeDimension(shape: [2, -1])) {
            try Tensor(shape: [2, -1], scalars: [])
        }
        #expect(throws: NormKitError.negativeDimension(shape: [-4])) {
            try Tensor(validatingShape: [-4], repeating: 0)
        }
    }

    @Test func emptyShapeThrows() {
        #expect(throws: NormKitError.emptyShape) { try Tensor(shape: [], scalars: [1]) }
    }

    @Test func overflowingShapeThrows() {
        let shape = [Int.max / 2, 3]
        #expect(throws: NormKitError.shapeOverflow(shape: shape)) { try Tensor(shape: shape, scalars: []) }
        #expect(throws: NormKitError.shapeOverflow(shape: shape)) { try Tensor(validatingShape: shape, repeating: 1) }
    }

    @Test func reshape() throws {
        let t = try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
        let r = try t.reshaped(to: [3, 2])
        #expect(r.shape == [3, 2])
        #expect(r.scalars == t.scalars)
        #expect(throws: NormKitError.reshapeMismatch(from: [2, 3], to: [4, 2])) { try t.reshaped(to: [4, 2]) }
        #expect(throws: NormKitError.negativeDimension(shape: [-2, -3])) { try t.reshaped(to: [-2, -3]) }
    }

    @Test func copyOnWrite() throws {
        let a = Tensor.ones([4])
        var b = a
        b.withUnsafeMutableBufferPointer { $0[0] = 7 }
        #expect(a.scalars == [1, 1, 1, 1])
        #expect(b.scalars == [7, 1, 1, 1])
        #expect(a != b)
    }

    @Test func randomIsDeterministicAndNormal() {
        let a = Tensor.randomNormal([10_000], mean: 2, standardDeviation: 3, seed: 1)
        let b = Tensor.randomNormal([10_000], mean: 2, standardDeviation: 3, seed: 1)
        let c = Tensor.randomNormal([10_000], mean: 2, standardDeviation: 3, seed: 2)
        #expect(a == b)
        #expect(a != c)
        let n = Double(a.scalarCount)
        let mean = a.scalars.reduce(0.0) { $0 + Double($1) } / n
        let variance = a.scalars.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / n
        #expect(abs(mean - 2) < 0.1)
        #expect(abs(variance.squareRoot() - 3) < 0.1)
    }

    @Test func description() throws {
        let t = try Tensor(shape: [2, 2], scalars: [1, 2.5, -3, 4])
        #expect(t.description == "Tensor([[1, 2.5],\n        [-3, 4]], shape: [2, 2])")
        let big = Tensor.zeros([2000])
        #expect(big.description == "Tensor([0, 0, 0, ..., 0, 0, 0], shape: [2000])")
        #expect(Tensor.zeros([0, 3]).description == "Tensor([], shape: [0, 3])")
        let special = try Tensor(shape: [3], scalars: [.nan, .infinity, -.infinity])
        #expect(special.description == "Tensor([nan, inf, -inf], shape: [3])")
    }

    @Test func errorMessagesNameExpectedAndActual() {
        let e = NormKitError.inputShapeMismatch(expectedLastDimension: 768, actual: [2, 4, 512])
        #expect(e.description == "input's last dimension must be 768 (the layer's dim), got shape [2, 4, 512]")
        #expect(NormKitError.scalarCountMismatch(shape: [2, 3], expected: 6, actual: 5).description
            == "shape [2, 3] needs 6 scalars, got 5")
    }
}

@Suite("Error messages")
struct ErrorMessageTests {
    @Test func longAvailableListsAreShortenedInTheMessageOnly() {
        let names = (0..<580).map { "t\($0)" }
        let error = NormKitError.missingTensor(name: "x", available: names)
        #expect(error.description.hasPrefix("no tensor or layer named 'x'; available: t0, t1, "))
        #expect(error.description.hasSuffix("t49, ... (530 more)"))
        #expect(NormKitError.missingTensor(name: "x", available: ["a", "b"]).description
            == "no tensor or layer named 'x'; available: a, b")
        #expect(NormKitError.missingTensor(name: "x", available: []).description
            == "no tensor or layer named 'x'; available: none")
    }
}
