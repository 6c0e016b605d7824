import ArgumentParser
import NormKit
import NormKitCLISupport

/// `normkit-dev bench`: time one workload per call against streaming the same bytes
/// (a memcpy for forward, `dx = x + dy` for backward), interleaved in the same run, and
/// report median, min, GB/s and the ratio.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time LayerNorm or RMSNorm (plain, backward, fused with the residual add) per call against streaming the same bytes, interleaved.",
        discussion: "Rounds of about 20 ms alternate: workload calls back to back, then as many single-thread passes that only stream the call's bytes (forward: a memcpy of the input into the output; backward: dx = x + dy, reading x and dy and writing dx; fused: h += x and y = h, reading x and h and writing h and y) and, with --threads above 1, the same pass split over as many threads, so all timings see the same load. GB/s counts the bytes a call must move (forward: input read once, output written once; backward: x and dy read, dx written). Calls shorter than 20 us are repeated within one timing and divided. Progress goes to stderr on runs longer than two seconds."
    )

    @Option(help: "Input shape, comma-separated; the last axis is normalised.")
    var shape = "8,1024,768"

    @Option(help: "Thread count (default: NORMKIT_THREADS or the number of cores).")
    var threads: Int?

    @Option(help: "Timed iterations (default: enough for about one second, 11...20000).")
    var iterations: Int?

    @Option(help: "What to time: \(Workload.allCases.map(\.rawValue).joined(separator: ", ")).")
    var workload: Workload = .forward

    @Flag(help: "Time the backward pass (the same as --workload backward).")
    var backward = false

    @Option(help: "Instruction-set level of the kernels: \(InstructionSet.allCases.map(\.rawValue).joined(separator: ", ")) (default: NORMKIT_ISA, else the best this CPU has, \(InstructionSet.detected)).")
    var isa: String?

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    @Option(help: "Random seed of the input.")
    var seed: UInt64 = 1

    @Option(help: "Mean of the input rows for --data normal (standard deviation 2). Every row takes the same forward path whatever the mean; backward takes its careful path above 32.")
    var inputMean: Float = 0

    @Option(help: "Input rows: \(InputData.allCases.map(\.rawValue).joined(separator: ", ")) (normal: N(input-mean, 2); symmetric: uniform [-2, 2); rand: uniform [0, 1); offset: 100 + N(0, 1)).")
    var data: InputData = .normal

    @Flag(help: "GPT-2-like input rows (N(0, 1) with three massive channels) instead of N(input-mean, 2).")
    var gpt2Like = false

    func validate() throws {
        let dims = try parsedShape()
        guard dims.last! >= 1 else { throw ValidationError("the last dimension of --shape must be >= 1") }
        // Before anything is allocated: input, output, gradients and the streaming
        // baseline's buffers, generously 32 bytes per element.
        let what = "--shape \(shape)"
        try CommandInput.checkFitsInMemory(
            elements: try CommandInput.elementCount(dims, what: what), bytesPerElement: 32, what: what)
        if let threads, threads < 1 || threads > Parallelism.maxThreadCount {
            throw ValidationError("--threads must be in 1...\(Parallelism.maxThreadCount), got \(threads)")
        }
        if let isa {
            do { _ = try InstructionSet(supportedNamed: isa) } catch { throw ValidationError("--isa: \(error)") }
        }
        if let iterations, iterations < 1 { throw ValidationError("--iterations must be >= 1, got \(iterations)") }
        if backward && !workload.isBackward && workload != .forward {
            throw ValidationError("--backward and --workload \(workload.rawValue) ask for different workloads")
        }
    }

    /// The workload to time: `--backward` means `--workload backward`.
    var chosenWorkload: Workload { backward && !workload.isBackward ? .backward : workload }

    func parsedShape() throws -> [Int] {
        try CommandInput.integerList(shape, flag: "--shape", minimum: 0, example: "8,1024,768")
    }

    func run() throws {
        let level = try isa.map { name throws(NormKitError) in try InstructionSet(supportedNamed: name) } ?? InstructionSet.current
        try InstructionSet.with(level) { try run(isa: level) }
    }

    func run(isa level: InstructionSet) throws {
        let dims = try parsedShape()
        let threadCount = threads ?? Parallelism.defaultThreadCount
        Parallelism.threadCount = threadCount
        let loadBefore = LoadAverage.read()
        let workload = chosenWorkload
        let state = try BenchState(workload: workload, shape: dims, seed: seed, inputMean: inputMean, gpt2Like: gpt2Like,
                                   data: data)
        let result = state.measure(iterations: iterations, threads: threadCount, progress: Progress())
        let report = BenchReport(
            workload: workload, shape: dims, threads: threadCount, isa: level, data: data.rawValue, inputMean: inputMean, gpt2Like: gpt2Like,
            result: result, bytes: state.bytes, load: (before: loadBefore, after: LoadAverage.read()))
        print(json ? report.json : report.text)
    }
}
