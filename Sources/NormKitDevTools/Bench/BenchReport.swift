#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NormKit
import NormKitCLISupport

/// The numbers of one bench run, as text or JSON.
struct BenchReport {
    let workload: Workload
    let shape: [Int]
    let threads: Int
    /// The kernels' instruction-set level during the run.
    let isa: InstructionSet
    /// The `--data` kind of the input rows.
    let data: String
    let inputMean: Float
    let gpt2Like: Bool
    /// `--gap-us`: the caller's busy-wait between timed calls.
    var gapUs = 0
    let result: BenchState.Timings
    let bytes: Int
    let load: (before: Double?, after: Double?)
    /// LayerNorm forward rows of one call off the fast path (0 for workloads without one).
    var paths = FallbackFraction()

    /// Median and minimum of a set of samples (NaN when there are none).
    struct Summary {
        let median: Double
        let min: Double
        init(_ samples: [Double]) {
            let s = samples.sorted()
            median = s.isEmpty ? .nan : s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
            self.min = s.first ?? .nan
        }
    }

    var work: Summary { Summary(result.workload) }
    var memcpy: Summary { Summary(result.memcpy) }
    var memcpyParallel: Summary? { result.memcpyParallel.isEmpty ? nil : Summary(result.memcpyParallel) }
    /// GB/s for a call of `seconds`: the bytes a call must move (`workload.streams` x
    /// the input's) over the time.
    func gbps(_ seconds: Double) -> Double { Double(workload.streams * bytes) / seconds / 1e9 }

    /// What the baseline is called: a memcpy for forward, the x + dy pass for backward,
    /// the h += x, y = h pass for the fused add.
    var baselineName: String { workload.isFused ? "add-stream" : workload.isBackward ? "stream" : "memcpy" }

    var text: String {
        let w = work, m = memcpy
        let name = baselineName
        var lines = [
            "normkit-dev bench: \(workload.rawValue), shape \(shape)" + (data != "normal" ? ", data \(data)" : "") + (inputMean != 0 ? ", input mean \(inputMean)" : "")
                + (gpt2Like ? ", GPT-2-like input" : "")
                + (gapUs > 0 ? ", \(gapUs) us between calls" : "")
                + ", threads \(threads), isa \(isa.rawValue)"
                + ", \(result.workload.count) iterations"
                + (result.inner > 1 ? " x \(result.inner) calls each" : "")
                + ", load \(load.before.map { fixed($0, 2) } ?? "?") -> \(load.after.map { fixed($0, 2) } ?? "?")",
            "  \(workload.rawValue.padded(to: 19)) median \(us(w.median)) us  min \(us(w.min)) us  \(fixed(gbps(w.median), 2)) GB/s",
            "  \("\(name) 1 thread".padded(to: 19)) median \(us(m.median)) us  min \(us(m.min)) us  \(fixed(gbps(m.median), 2)) GB/s",
        ]
        if let p = memcpyParallel {
            lines.append("  \("\(name) \(threads) threads".padded(to: 19)) median \(us(p.median)) us  min \(us(p.min)) us  \(fixed(gbps(p.median), 2)) GB/s")
        }
        if workload.isBackward {
            lines.append("  (stream: y = x + dy, reading x and dy and writing y: the bytes backward must move)")
        }
        lines.append("  ratio to \(name) (median): \(fixed(w.median / m.median, 3))"
            + (memcpyParallel.map { " (1 thread), \(fixed(w.median / $0.median, 3)) (\(threads) threads)" } ?? ""))
        if paths.total > 0 || workload == .forward || workload == .forwardAllocating || workload == .fused {
            lines.append("  rows off the fast path: \(fixed(paths.total * 100, 2))% (Double moments \(fixed(paths.doubleMoments * 100, 2))%, Double affine \(fixed(paths.doubleAffine * 100, 2))%, non-finite \(fixed(paths.nonFinite * 100, 2))%); refused on the sampled shift: \(fixed(paths.sampledRefused * 100, 2))%")
        }
        if paths.rmsDoubleSum > 0 || workload == .rms || workload == .rmsFused {
            lines.append("  RMSNorm rows refused by the float sum's certificate (Double sum of squares): \(fixed(paths.rmsDoubleSum * 100, 2))%")
        }
        return lines.joined(separator: "\n")
    }

    /// The run as one line of JSON (scripts/plot-performance.py and scripts/compare-peers.py
    /// read these fields; times in microseconds, a non-finite number as null).
    var json: String {
        let w = work, m = memcpy, p = memcpyParallel
        let record = Record(
            workload: workload.rawValue, shape: shape, rows: shape.dropLast().reduce(1, *), dim: shape.last!,
            threads: threads, isa: isa.rawValue, data: data, inputMean: Record.number(Double(inputMean)), gpt2Like: gpt2Like,
            gapUs: gapUs,
            baseline: workload.isFused ? "stream x+h->h,y" : workload.isBackward ? "stream x+dy->dx" : "memcpy",
            iterations: result.workload.count, callsPerIteration: result.inner,
            bytes: bytes, trafficBytes: workload.streams * bytes,
            medianUs: Record.number(w.median * 1e6), minUs: Record.number(w.min * 1e6), gbps: Record.number(gbps(w.median)),
            memcpyMedianUs: Record.number(m.median * 1e6), memcpyMinUs: Record.number(m.min * 1e6),
            memcpyGbps: Record.number(gbps(m.median)), ratioToMemcpy: Record.number(w.median / m.median),
            memcpyParallel: p.map {
                .init(medianUs: Record.number($0.median * 1e6), gbps: Record.number(gbps($0.median)),
                      ratio: Record.number(w.median / $0.median))
            },
            loadBefore: load.before.flatMap(Record.number), loadAfter: load.after.flatMap(Record.number),
            fallbackFraction: Record.number(paths.total), sampledRefusedFraction: Record.number(paths.sampledRefused),
            rmsDoubleSumFraction: Record.number(paths.rmsDoubleSum))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Every field is an Int, a String, a Bool or a finite Double: encoding cannot fail.
        let data = try! encoder.encode(record)
        return String(decoding: data, as: UTF8.self)
    }

    private func us(_ s: Double) -> String { fixed(s * 1e6, s < 1e-4 ? 3 : 1) }
}

extension BenchReport {
    /// The JSON form of a run, keys sorted. Field names are snake_case; the parallel-baseline fields
    /// appear only when the run had more than one thread; the others are always present
    /// (null when unknown or not finite).
    struct Record: Encodable {
        let workload: String
        let shape: [Int]
        let rows: Int
        let dim: Int
        let threads: Int
        let isa: String
        let data: String
        let inputMean: Double?
        let gpt2Like: Bool
        let gapUs: Int
        let baseline: String
        let iterations: Int
        let callsPerIteration: Int
        let bytes: Int
        let trafficBytes: Int
        let medianUs: Double?
        let minUs: Double?
        let gbps: Double?
        let memcpyMedianUs: Double?
        let memcpyMinUs: Double?
        let memcpyGbps: Double?
        let ratioToMemcpy: Double?
        let memcpyParallel: Parallel?
        let loadBefore: Double?
        let loadAfter: Double?
        /// LayerNorm forward rows of one call off the certified fast path, as a fraction.
        let fallbackFraction: Double?
        let sampledRefusedFraction: Double?
        let rmsDoubleSumFraction: Double?

        /// The baseline split over the run's threads.
        struct Parallel {
            let medianUs: Double?
            let gbps: Double?
            let ratio: Double?
        }

        /// `v` to four decimals if finite, else nil (JSON has no NaN or infinity).
        static func number(_ v: Double) -> Double? { v.isFinite ? (v * 1e4).rounded() / 1e4 : nil }

        enum CodingKeys: String, CodingKey {
            case workload, shape, rows, dim, threads, isa, data
            case inputMean = "input_mean", gpt2Like = "gpt2_like", gapUs = "gap_us", baseline, iterations
            case callsPerIteration = "calls_per_iteration", bytes, trafficBytes = "traffic_bytes"
            case medianUs = "median_us", minUs = "min_us", gbps
            case memcpyMedianUs = "memcpy_median_us", memcpyMinUs = "memcpy_min_us", memcpyGbps = "memcpy_gbps"
            case ratioToMemcpy = "ratio_to_memcpy"
            case memcpyParallelMedianUs = "memcpy_parallel_median_us", memcpyParallelGbps = "memcpy_parallel_gbps"
            case ratioToMemcpyParallel = "ratio_to_memcpy_parallel"
            case loadBefore = "load_before", loadAfter = "load_after"
            case fallbackFraction = "fallback_fraction"
            case sampledRefusedFraction = "sampled_refused_fraction"
            case rmsDoubleSumFraction = "rms_double_sum_fraction"
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(workload, forKey: .workload)
            try c.encode(shape, forKey: .shape)
            try c.encode(rows, forKey: .rows)
            try c.encode(dim, forKey: .dim)
            try c.encode(threads, forKey: .threads)
            try c.encode(isa, forKey: .isa)
            try c.encode(data, forKey: .data)
            try c.encode(inputMean, forKey: .inputMean)
            try c.encode(gpt2Like, forKey: .gpt2Like)
            try c.encode(baseline, forKey: .baseline)
            try c.encode(iterations, forKey: .iterations)
            try c.encode(callsPerIteration, forKey: .callsPerIteration)
            try c.encode(bytes, forKey: .bytes)
            try c.encode(trafficBytes, forKey: .trafficBytes)
            try c.encode(medianUs, forKey: .medianUs)
            try c.encode(minUs, forKey: .minUs)
            try c.encode(gbps, forKey: .gbps)
            try c.encode(memcpyMedianUs, forKey: .memcpyMedianUs)
            try c.encode(memcpyMinUs, forKey: .memcpyMinUs)
            try c.encode(memcpyGbps, forKey: .memcpyGbps)
            try c.encode(ratioToMemcpy, forKey: .ratioToMemcpy)
            if let p = memcpyParallel {
                try c.encode(p.medianUs, forKey: .memcpyParallelMedianUs)
                try c.encode(p.gbps, forKey: .memcpyParallelGbps)
                try c.encode(p.ratio, forKey: .ratioToMemcpyParallel)
            }
            try c.encode(loadBefore, forKey: .loadBefore)
            try c.encode(loadAfter, forKey: .loadAfter)
            try c.encode(fallbackFraction, forKey: .fallbackFraction)
            try c.encode(sampledRefusedFraction, forKey: .sampledRefusedFraction)
            try c.encode(rmsDoubleSumFraction, forKey: .rmsDoubleSumFraction)
        }
    }
}
