import NormKit
import NormKitTesting
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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
    /// (0: nothing reached the launcher; 1: it ran serially).
    static func measure<T>(_ body: () throws -> T) rethrows -> (value: T, threads: Int) {
        let probe = SplitProbe()
        let value = try SplitProbe.$current.withValue(probe) { try body() }
        return (value, probe.maxThreads)
    }

    /// Runs `body` with `threads` threads allowed until one call really ran on two
    /// threads or more (a neighbour test may hold the pool, and then a call runs on its
    /// own thread), and returns that call's result. Records an issue, and returns the
    /// last result, when none split in `attempts` tries (10 ms apart). With `threads == 1` it runs
    /// once and records an issue if anything ran on a second thread.
    static func run<T>(
        threads: Int, _ what: @autoclosure () -> String, attempts: Int = 500,
        sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> T
    ) rethrows -> T {
        var last: (value: T, threads: Int)
        var attempt = 0
        repeat {
            last = try Parallelism.withThreadCount(threads) { try measure(body) }
            attempt += 1
            if threads == 1 {
                if last.threads > 1 { Issue.record("\(what()): ran on \(last.threads) threads at 1", sourceLocation: sourceLocation) }
                return last.value
            }
            if last.threads >= 2 { return last.value }
            // Neighbour suites can hold the pool for seconds in a parallel run (a CI run
            // missed 500 back-to-back tries): after a miss, pause 10 ms (up to 5 s).
            usleep(10_000)
        } while attempt < attempts
        Issue.record("\(what()): never split over \(threads) threads in \(attempts) calls (probe: \(last.threads))",
                     sourceLocation: sourceLocation)
        return last.value
    }
}

/// The bit patterns of a tensor's elements (NaN equals itself, -0 differs from +0).
func bits(_ t: Tensor) -> [UInt32] { t.scalars.map(\.bitPattern) }

/// The bit patterns of every gradient (input, weight, bias).
func bits(_ g: LayerNorm.Gradients) -> [[UInt32]] { [bits(g.input), bits(g.weight), bits(g.bias)] }

/// The bit patterns of every gradient (input, weight).
func bits(_ g: RMSNorm.Gradients) -> [[UInt32]] { [bits(g.input), bits(g.weight)] }
