import NormKit
import NormKitTesting
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Which sanitizer this test binary runs under (its runtime's entry point is linked in):
/// CI's `swift test --sanitize=thread` and `--sanitize=address` steps, or a developer's.
///
/// Those steps look for races and memory errors, not for numbers: the plain runs check
/// every bound. So under a sanitizer (and only there) some tests run a smaller instance
/// of what they check, one that still reaches the same code (the pool split over several
/// blocks and a partial one, each kind of row end, the same process-level paths), and
/// a few that only repeat at a larger size what others check are off: every such test
/// names `Sanitizer` (`gpt2Shape` below, for one). At 3-15x the plain time they cost CI
/// minutes (gpt2Shape's backward alone took 64 s under ThreadSanitizer).
enum Sanitizer {
    static let thread = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "__tsan_init") != nil
    static let address = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "__asan_init") != nil
    static var any: Bool { thread || address }

    /// GPT-2's activations, [8, 1024, 768], in the plain runs; under a sanitizer
    /// [2, 150, 768]: 300 rows, still split over the pool (8 forward blocks of 42 rows,
    /// 5 backward blocks of 64, each with a partial last block).
    static var gpt2Shape: [Int] { any ? [2, 150, 768] : [8, 1024, 768] }
}

/// The accuracy bound of the foundation issue: per row, |y - y64| / max(1, max |y64|).
let forwardBound = 1e-6

/// Runs `norm` on `x` and returns the error against the float64 reference.
func forwardError(_ norm: LayerNorm, _ x: Tensor) throws -> Double {
    let y = try norm(x)
    #expect(y.shape == x.shape)
    let expected = try Reference.layerNormDouble(
        x, weight: norm.elementwiseAffine ? norm.weight : nil,
        bias: norm.usesBias ? norm.bias : nil, eps: norm.eps)
    return Reference.maxRowError(y, expected: expected)
}

/// The hard rows of `Reference.HardRow`, by name (test arguments need plain values).
enum HardRows {
    static func make(_ name: String, dim: Int, seed: UInt64 = 7) -> [Float] {
        guard let row = Reference.HardRow(rawValue: name) else { fatalError("unknown hard row \(name)") }
        return row.values(dim: dim, seed: seed)
    }

    static let names = Reference.HardRow.allCases.map(\.rawValue)
}

/// Per-call evidence of a thread split (`SplitProbe.current`): how many threads ran the
/// blocks of the calls made in `body`, on this task only, whatever the tests running
/// next to it do with the shared pool.
enum Split {
    /// `body`'s result and the most threads that ran any one row-parallel launch in it
    /// (0: nothing reached the launcher; 1: it ran serially). `requiringSplit`: the
    /// launches wait for the pool and its helpers (see `run`), else they run as usual.
    static func measure<T>(requiringSplit: Bool = false, _ body: () throws -> T) rethrows -> (value: T, threads: Int) {
        let probe = SplitProbe(requiresSplit: requiringSplit)
        let value = try SplitProbe.$current.withValue(probe) { try body() }
        return (value, probe.maxThreads)
    }

    /// Runs `body` once with `threads` threads allowed and a probe that requires the
    /// split (`SplitProbe(requiresSplit: true)`: each launch waits for the shared pool
    /// and for every helper it asked for), and returns its result. Records an issue when
    /// no launch ran on two threads or more, or, with `threads == 1`, when one did.
    static func run<T>(
        threads: Int, _ what: @autoclosure () -> String,
        sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> T
    ) rethrows -> T {
        let probe = SplitProbe(requiresSplit: true)
        let value = try Parallelism.withThreadCount(threads) { try SplitProbe.$current.withValue(probe) { try body() } }
        if threads == 1 && probe.maxThreads > 1 {
            Issue.record("\(what()): ran on \(probe.maxThreads) threads at 1", sourceLocation: sourceLocation)
        } else if threads > 1 && probe.maxThreads < 2 {
            Issue.record("\(what()): not split over \(threads) threads (probe: \(probe.maxThreads), launches: \(probe.launches))",
                         sourceLocation: sourceLocation)
        }
        return value
    }
}

/// The bit patterns of a tensor's elements (NaN equals itself, -0 differs from +0).
func bits(_ t: Tensor) -> [UInt32] { t.scalars.map(\.bitPattern) }

/// The bit patterns of every gradient (input, weight, bias).
func bits(_ g: LayerNorm.Gradients) -> [[UInt32]] { [bits(g.input), bits(g.weight), bits(g.bias)] }

/// The bit patterns of every gradient (input, weight).
func bits(_ g: RMSNorm.Gradients) -> [[UInt32]] { [bits(g.input), bits(g.weight)] }

/// The kernel layer's blocked float sums (the forward fast moments, the backward row sums)
/// as their bound tests see them.
enum BlockedSums {
    /// Elements per vector at each level (NK_W).
    static func width(_ level: InstructionSet) -> Int {
        switch level {
        case .baseline: 4
        case .avx2: 8
        case .avx512: 16
        }
    }

    /// Vectors in a whole block, added as a tree of depth 3 (NK_LN_TREE_VECTORS, and
    /// 2·NK_LN_BLOCK in the backward).
    static let treeVectors = 8

    /// `count` values at a whole block's tree edge: by the position of their vector in the
    /// block, [1, a, a, 0, a, 0, 0, 0]. With `a` just over u (1.01u), each of the tree's three
    /// levels adds about a to a float just below a rounding boundary and rounds up by 0.99u:
    /// 2.97u in all, of the 3u that three additions allow.
    static func treeEdge(count: Int, width: Int, a: Float) -> [Float] {
        let pattern: [Float] = [1, a, a, 0, a, 0, 0, 0]
        return (0..<count).map { pattern[($0 / width) % treeVectors] }
    }
}
