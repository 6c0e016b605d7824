// LayerNorm forward at the three shapes of the performance issue ([1, 1, 768]: one
// token of decoding; [1, 1024, 768]: one sequence, cache-resident; [8, 1024, 768]: a
// batch, 25 MB in and 25 MB out, DRAM-bound), on one thread and on every core; forward
// on large-mean rows (uniform [0, 1) and 100 + N(0, 1), which must cost what
// symmetric rows cost); and backward into caller-provided gradients, fresh and
// accumulating.
//
// Metrics: wall clock and mallocs (throughput would only restate wall clock, and a
// metric without a tolerance fails `thresholds check` on any noise). `forward(_:into:)`
// must stay at zero mallocs per call (absolute tolerance 0); plain `forward(_:)`
// allocates its output only (one malloc). `backward(...into:)` and
// `backward(...accumulatingInto:)` must stay at zero mallocs too. Wall-clock tolerances are relative to the
// committed Thresholds/ (p90; generous, the machines are shared); a slowdown beyond
// them fails `swift package benchmark thresholds check`.
import Benchmark
import NormKit

/// Inputs, parameters and output of one benchmark, made once, outside the timed loop.
final class Workspace: @unchecked Sendable {
    // @unchecked: each benchmark owns its workspace and package-benchmark runs one
    // benchmark at a time.
    let norm: LayerNorm
    let x: Tensor
    var y: Tensor

    /// The input's kind: `normal` N(0, 2), `rand` uniform [0, 1), `offset` 100 + N(0, 1).
    init(shape: [Int], data: String = "normal") {
        let dim = shape.last!
        var norm = try! LayerNorm(dim: dim)
        norm.weight = Tensor.randomNormal([dim], mean: 1, standardDeviation: 0.2, seed: 2)
        norm.bias = Tensor.randomNormal([dim], standardDeviation: 0.1, seed: 3)
        self.norm = norm
        switch data {
        case "rand": x = Tensor.randomUniform(shape, lower: 0, upper: 1, seed: 1)
        case "offset": x = Tensor.randomNormal(shape, mean: 100, standardDeviation: 1, seed: 1)
        default: x = Tensor.randomNormal(shape, standardDeviation: 2, seed: 1)
        }
        y = Tensor.zeros(shape)
    }
}

/// What a backward benchmark needs: the forward's statistics, an output gradient and
/// gradients to write into, made once.
final class BackwardWorkspace: @unchecked Sendable {
    // @unchecked: as Workspace.
    let forward: Workspace
    let dy: Tensor
    let statistics: LayerNorm.Statistics
    var gradients: LayerNorm.Gradients

    init(shape: [Int]) {
        forward = Workspace(shape: shape)
        dy = Tensor.randomNormal(shape, seed: 4)
        statistics = try! forward.norm.forwardForTraining(forward.x).statistics
        gradients = try! forward.norm.zeroGradients(inputShape: shape)
    }
}

let benchmarks: @Sendable () -> Void = {
    let allThreads = Parallelism.activeProcessorCount
    let shapes: [[Int]] = [[1, 1, 768], [1, 1024, 768], [8, 1024, 768]]

    for shape in shapes {
        let elements = shape.reduce(1, *)
        // Enough calls per sample that the clock's own cost is noise.
        let scaling: BenchmarkScalingFactor = elements < 10_000 ? .kilo : .one
        let zeroMallocs: [BenchmarkMetric: BenchmarkThresholds] = [
            .wallClock: .init(relative: [.p50: 30.0, .p90: 50.0]),
            .mallocCountTotal: .init(absolute: [.p0: 0, .p25: 0, .p50: 0, .p75: 0, .p90: 0, .p99: 0, .p100: 0]),
        ]
        for threads in Set([1, allThreads]).sorted() {
            // Names without spaces: package-benchmark writes threshold files with spaces
            // replaced by "_" but reads them back by the raw name.
            let name = "forwardInto_\(shape.map(String.init).joined(separator: "x"))_threads\(threads)"
            let workspace = Workspace(shape: shape)
            Benchmark(
                name,
                configuration: .init(
                    metrics: [.wallClock, .mallocCountTotal],
                    warmupIterations: 3,
                    scalingFactor: scaling,
                    maxDuration: .seconds(2),
                    maxIterations: 2_000,
                    thresholds: zeroMallocs
                )
            ) { benchmark in
                Parallelism.withThreadCount(threads) {
                    for _ in benchmark.scaledIterations {
                        try! workspace.norm.forward(workspace.x, into: &workspace.y)
                    }
                }
                blackHole(workspace.y)
            }
        }
    }

    // Large-mean rows: the same path as symmetric rows, so about the same time.
    for data in ["rand", "offset"] {
        for threads in Set([1, allThreads]).sorted() {
            let workspace = Workspace(shape: [1, 1024, 768], data: data)
            Benchmark(
                "forwardInto_\(data)_1x1024x768_threads\(threads)",
                configuration: .init(
                    metrics: [.wallClock, .mallocCountTotal], warmupIterations: 3, maxDuration: .seconds(2),
                    maxIterations: 2_000,
                    thresholds: [
                        .wallClock: .init(relative: [.p50: 30.0, .p90: 50.0]),
                        .mallocCountTotal: .init(absolute: [.p0: 0, .p50: 0, .p90: 0, .p100: 0]),
                    ]
                )
            ) { benchmark in
                Parallelism.withThreadCount(threads) {
                    for _ in benchmark.scaledIterations {
                        try! workspace.norm.forward(workspace.x, into: &workspace.y)
                    }
                }
                blackHole(workspace.y)
            }
        }
    }

    // Backward into caller-provided gradients: zero mallocs per call (after the
    // warm-up, which sizes the per-thread scratch), fresh and accumulating.
    for shape in [[1, 1024, 768], [8, 1024, 768]] {
        for threads in Set([1, allThreads]).sorted() {
            for accumulating in [false, true] {
                let workspace = BackwardWorkspace(shape: shape)
                let name = (accumulating ? "backwardAccumulating_" : "backwardInto_")
                    + "\(shape.map(String.init).joined(separator: "x"))_threads\(threads)"
                Benchmark(
                    name,
                    configuration: .init(
                        metrics: [.wallClock, .mallocCountTotal], warmupIterations: 3, maxDuration: .seconds(2),
                        maxIterations: 1_000,
                        thresholds: [
                            .wallClock: .init(relative: [.p50: 30.0, .p90: 50.0]),
                            .mallocCountTotal: .init(absolute: [.p0: 0, .p50: 0, .p90: 0, .p100: 0]),
                        ]
                    )
                ) { benchmark in
                    let f = workspace.forward
                    Parallelism.withThreadCount(threads) {
                        for _ in benchmark.scaledIterations {
                            if accumulating {
                                try! f.norm.backward(outputGradient: workspace.dy, input: f.x, statistics: workspace.statistics,
                                                     accumulatingInto: &workspace.gradients)
                            } else {
                                try! f.norm.backward(outputGradient: workspace.dy, input: f.x, statistics: workspace.statistics,
                                                     into: &workspace.gradients)
                            }
                        }
                    }
                    blackHole(workspace.gradients)
                }
            }
        }
    }

    // The allocating call at the decoding shape: one malloc (its output) per call, and
    // the budget of 1 us per call including that allocation.
    let token = Workspace(shape: [1, 1, 768])
    Benchmark(
        "forwardAllocating_1x1x768",
        configuration: .init(
            metrics: [.wallClock, .mallocCountTotal],
            warmupIterations: 3,
            scalingFactor: .kilo,
            maxDuration: .seconds(2),
            maxIterations: 2_000,
            thresholds: [
                .wallClock: .init(relative: [.p50: 30.0, .p90: 50.0]),
                .mallocCountTotal: .init(absolute: [.p50: 0, .p90: 0, .p100: 0]),
            ]
        )
    ) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try! token.norm.forward(token.x))
        }
    }
}
