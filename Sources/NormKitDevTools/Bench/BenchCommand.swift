import ArgumentParser
import CNormKernels
import NormKit
import NormKitCLISupport

/// `normkit-dev bench`: time one workload per call against streaming the same bytes
/// (a memcpy for forward, `dx = x + dy` for backward), interleaved in the same run, and
/// report median, min, GB/s and the ratio.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time LayerNorm or RMSNorm (plain, backward, fused with the residual add) per call against streaming the same bytes, interleaved.",
        discussion: "After a warm-up of at least 0.25 s of workload calls, rounds of about 20 ms alternate: workload calls back to back, then as many single-thread passes that only stream the call's bytes (forward: a memcpy of the input into the output; backward: dx = x + dy, reading x and dy and writing dx; fused: h += x and y = h, reading x and h and writing h and y) and, with --threads above 1, the same pass split over as many threads, so all timings see the same load. GB/s counts the bytes a call must move (forward: input read once, output written once; backward: x and dy read, dx written). Calls shorter than 20 us are repeated within one timing and divided. Progress goes to stderr on runs longer than two seconds."
    )

    // Numeric options parse unconditionally: `-5` is a value (a legitimate --input-mean,
    // or a range error naming the flag), never "Missing value".
    @Option(parsing: .unconditional, help: "Input shape, comma-separated; the last axis is normalised.")
    var shape = "8,1024,768"

    @Option(parsing: .unconditional, help: "Thread count (default: NORMKIT_THREADS or the number of cores).")
    var threads: Int?

    @Option(parsing: .unconditional, help: "Timed iterations, 1...\(Bench.maxIterations) (default: enough for about one second, 11...20000).")
    var iterations: Int?

    @Option(help: "What to time: \(Workload.allCases.map(\.rawValue).joined(separator: ", ")).")
    var workload: Workload = .forward

    @Flag(help: "Time the backward pass (the same as --workload backward).")
    var backward = false

    @Option(help: "Instruction-set level of the kernels: \(InstructionSet.allCases.map(\.rawValue).joined(separator: ", ")) (default: NORMKIT_ISA, else the best this CPU has, \(InstructionSet.detected)).")
    var isa: String?

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    @Option(parsing: .unconditional, help: "Random seed of the input (0 ... 2^64-1).")
    var seed: String = "1"

    @Option(parsing: .unconditional, help: "Mean of the input rows for --data normal (standard deviation 2; default 0). Every row takes the same forward path whatever the mean; backward takes its careful path above 32.")
    var inputMean: String?

    @Option(help: "Input rows: \(InputData.allCases.map(\.rawValue).joined(separator: ", ")) (normal: N(input-mean, 2); symmetric: uniform [-2, 2); rand: uniform [0, 1); offset: 100 + N(0, 1)).")
    var data: InputData?

    @Flag(help: "GPT-2-like input rows (N(0, 1) with three massive channels) instead of N(input-mean, 2).")
    var gpt2Like = false

    @Option(parsing: .unconditional, help: "Microseconds the calling thread busy-waits between timed workload calls, 0...100000 (default 0: calls back to back), as a model's other work would: past the pool's 50 us spin its helper is asleep when the next call starts.")
    var gapUs: Int = 0

    func validate() throws {
        let dims = try parsedShape()
        guard dims.last! >= 1 else { throw ValidationError("the last dimension of --shape must be >= 1") }
        // Before anything is allocated: input, output, gradients and the streaming
        // baseline's buffers. Peak RSS less the process's own, at --shape 4,1000000:
        // 15.5 bytes per element (forward), 27 (reference), 20 (add-layernorm), 33
        // (rms-backward), 38 (backward); admitted at 48.
        let what = "--shape \(shape)"
        try CommandInput.checkFitsInMemory(
            elements: try CommandInput.elementCount(dims, what: what), bytesPerElement: 48, what: what)
        if let threads, threads < 1 || threads > Parallelism.maxThreadCount {
            throw ValidationError("--threads must be in 1...\(Parallelism.maxThreadCount), got \(threads)")
        }
        if let isa {
            do { _ = try InstructionSet(supportedNamed: isa) } catch { throw ValidationError("--isa: \(error)") }
        }
        if let iterations { _ = try CommandInput.integer(iterations, flag: "--iterations", in: 1...Bench.maxIterations) }
        _ = try CommandInput.integer(gapUs, flag: "--gap-us", in: 0...100_000)
        _ = try CommandInput.seed(seed)
        if let inputMean {
            _ = try CommandInput.finiteFloat(inputMean, flag: "--input-mean", example: "-5")
            if gpt2Like { throw ValidationError("--input-mean and --gpt2-like ask for different inputs; give one") }
            if let data, data != .normal {
                throw ValidationError("--input-mean applies to --data normal only, not --data \(data.rawValue)")
            }
        }
        if gpt2Like, let data, data != .normal {
            throw ValidationError("--gpt2-like and --data \(data.rawValue) ask for different inputs; give one")
        }
        if backward && !workload.isBackward && workload != .forward {
            throw ValidationError("--backward and --workload \(workload.rawValue) ask for different workloads")
        }
    }

    /// The most timed iterations `--iterations` takes (three arrays of this many timings).
    static let maxIterations = 1_000_000

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
        let seed = try CommandInput.seed(self.seed)
        let inputMean = try self.inputMean.map { try CommandInput.finiteFloat($0, flag: "--input-mean", example: "-5") } ?? 0
        let data = self.data ?? .normal
        let state = try BenchState(workload: workload, shape: dims, seed: seed, inputMean: inputMean, gpt2Like: gpt2Like,
                                   data: data)
        let paths = FallbackFraction.measure(rows: dims.dropLast().reduce(1, *)) { workload.runOnce(state) }
        let result = state.measure(iterations: iterations, threads: threadCount, gapNanoseconds: UInt64(gapUs) * 1000,
                                   progress: Progress())
        let report = BenchReport(
            workload: workload, shape: dims, threads: threadCount, isa: level, data: data.rawValue, inputMean: inputMean, gpt2Like: gpt2Like,
            gapUs: gapUs, result: result, bytes: state.bytes, load: (before: loadBefore, after: LoadAverage.read()), paths: paths)
        print(json ? report.json : report.text)
    }
}

/// The share of LayerNorm forward rows of one call that left the certified float fast
/// path (docs/numerics.md, "The fast path"), from the kernel layer's process-wide counts.
struct FallbackFraction {
    /// Rows that took the Double moments, the Double affine, or were non-finite, over the call's rows.
    var doubleMoments = 0.0, doubleAffine = 0.0, nonFinite = 0.0
    /// Rows the sampled shift could not certify (they went on to the sdot shift), over the call's rows.
    var sampledRefused = 0.0
    /// RMSNorm rows whose float sum of squares was refused (they took the Double sum), over the call's rows.
    var rmsDoubleSum = 0.0
    var total: Double { doubleMoments + doubleAffine + nonFinite }

    static func measure(rows: Int, _ call: () -> Void) -> FallbackFraction {
        var before = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0)), after = before  // NK_LN_COUNTS
        withUnsafeMutableBytes(of: &before) { nk_ln_path_counts($0.baseAddress!.assumingMemoryBound(to: UInt64.self)) }
        call()
        withUnsafeMutableBytes(of: &after) { nk_ln_path_counts($0.baseAddress!.assumingMemoryBound(to: UInt64.self)) }
        let n = Double(max(rows, 1))
        return FallbackFraction(doubleMoments: Double(after.1 &- before.1) / n, doubleAffine: Double(after.2 &- before.2) / n,
                                nonFinite: Double(after.3 &- before.3) / n, sampledRefused: Double(after.4 &- before.4) / n,
                                rmsDoubleSum: Double(after.5 &- before.5) / n)
    }
}
