// `normkit-dev leak-check`: a long loop of NormKit calls, for scripts/leak-check.sh.
//
// Run alone, it checks that resident memory does not grow once warmed up (a leak of
// even one tensor per call would add megabytes); run under valgrind with --no-rss,
// memcheck reports anything definitely or indirectly lost. --inject-leak leaks 16 KiB
// per iteration on purpose, so the script can prove each check is able to fail.
// --count-allocations checks the allocation-free calls instead (Allocations.swift).
//
// Each iteration runs forward (allocating, into, careful-path and NaN rows, a fresh
// layer), backward (fresh, accumulating, hand-made statistics, NaN rows), a parallel
// forward and backward through the worker pool (every 4th iteration), safetensors and
// .npy encoding and parsing in memory (valid files and one malformed file per format),
// every 256th iteration a write to and mapped read from disk, the error paths, and RMSNorm
// with the fused residual add of both norms (every 4th iteration, RMSRound.swift).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import Foundation
import NormKit
import NormKitIO
import NormKitTesting
import NormKitCLISupport

/// Resident set size in KiB (Linux: /proc/self/statm), or nil where unavailable.
func residentKiB() -> Int? {
    guard let f = fopen("/proc/self/statm", "r") else { return nil }
    defer { fclose(f) }
    var buffer = [UInt8](repeating: 0, count: 128)
    let n = fread(&buffer, 1, buffer.count - 1, f)
    // "size resident shared text lib data dt", in pages.
    let fields = String(decoding: buffer[0..<n], as: UTF8.self).split(separator: " ")
    guard fields.count > 1, let resident = Int(fields[1]) else { return nil }
    return resident * Int(sysconf(Int32(_SC_PAGESIZE))) / 1024
}

/// The inputs every iteration reuses (built once, so the loop measures NormKit).
struct Fixture {
    let norm: LayerNorm
    let x: Tensor
    let hard: Tensor
    var out: Tensor
    /// Output gradients for `x` and `hard`.
    let dy: Tensor
    let hardDy: Tensor
    /// Gradients accumulated into, across iterations.
    var gradients: LayerNorm.Gradients
    /// [128, 768]: big enough for RowParallel to split it over the worker pool.
    let wide: Tensor
    let wideDy: Tensor
    /// A directory for the on-disk round trips (removed at exit).
    let directory: URL

    init() throws {
        var norm = try LayerNorm(dim: 768)
        norm.weight = Tensor.randomNormal([768], mean: 1, standardDeviation: 0.2, seed: 1)
        norm.bias = Tensor.randomNormal([768], standardDeviation: 0.1, seed: 2)
        self.norm = norm
        x = Tensor.randomNormal([4, 16, 768], seed: 3)
        // Careful-path rows (large mean, huge, subnormal), a constant row, a NaN row.
        var rows: [Float] = []
        for r in 0..<5 {
            for i in 0..<768 {
                switch r {
                case 0: rows.append(1e6 + Float(i % 7))
                case 1: rows.append(1e30 * Float(i % 5) - 2e30)
                case 2: rows.append(Float(i % 3) * .leastNonzeroMagnitude)
                case 3: rows.append(3.5)
                default: rows.append(i == 100 ? .nan : Float(i))
                }
            }
        }
        hard = try Tensor(shape: [5, 768], scalars: rows)
        out = Tensor.zeros([4, 16, 768])
        dy = Tensor.randomNormal([4, 16, 768], seed: 4)
        hardDy = Tensor.randomNormal([5, 768], seed: 5)
        gradients = try norm.zeroGradients(inputShape: [4, 16, 768])
        wide = Tensor.randomNormal([128, 768], mean: 1, standardDeviation: 2, seed: 6)
        wideDy = Tensor.randomNormal([128, 768], seed: 7)
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("normkit-leakcheck-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }
}

/// The backward pass: fresh and accumulating gradients, statistics as tensors,
/// hand-made statistics, careful-path and NaN rows, and its error paths.
func backwardRound(_ f: inout Fixture, _ i: Int) throws -> Double {
    var sum = 0.0
    let (y, statistics) = try f.norm.forwardForTraining(f.x)
    sum += Double(y.scalars[i % y.scalarCount])
    let g = try f.norm.backward(outputGradient: f.dy, input: f.x, statistics: statistics)
    sum += Double(g.input.scalars[(i * 3) % g.input.scalarCount]) + Double(g.weight.scalars[i % 768])
    try f.norm.backward(outputGradient: f.dy, input: f.x, statistics: statistics, accumulatingInto: &f.gradients)
    sum += Double(f.gradients.bias.scalars[i % 768])
    sum += Double(statistics.mean.scalars[i % 64]) + Double(statistics.rstd.scalars[i % 64])

    let (_, hardStatistics) = try f.norm.forwardForTraining(f.hard)
    let h = try f.norm.backward(outputGradient: f.hardDy, input: f.hard, statistics: hardStatistics)
    sum += Double(h.input.scalars[i % 768])  // row 0: the Double fallback's territory
    let made = try LayerNorm.Statistics(inputShape: [5, 768], means: [0, .nan, 1e30, 0, 0],
                                        reciprocalStandardDeviations: [1, 1, 1e-30, -1, 0])
    sum += Double(try f.norm.backward(outputGradient: f.hardDy, input: f.hard, statistics: made).input.scalars[i % 768])

    // A layer without affine parameters, and one without bias, fresh each time.
    let plain = try LayerNorm(dim: 33, elementwiseAffine: false)
    let small = Tensor.randomNormal([3, 33], seed: UInt64(i))
    let (_, s) = try plain.forwardForTraining(small)
    sum += Double(try plain.backward(outputGradient: small, input: small, statistics: s).input.scalars[i % 99])
    sum += try Reference.layerNormBackwardDouble(outputGradient: small, input: small).input[i % 99]

    // Error paths.
    do { _ = try f.norm.backward(outputGradient: f.hardDy, input: f.x, statistics: statistics) } catch { sum += Double(error.description.utf8.count) }
    do { _ = try f.norm.backward(outputGradient: f.hardDy, input: f.hard, statistics: statistics) } catch { sum += 1 }
    var wrong = f.gradients
    wrong.bias = Tensor.zeros([3])
    do { try f.norm.backward(outputGradient: f.dy, input: f.x, statistics: statistics, accumulatingInto: &wrong) } catch { sum += 1 }
    do { _ = try LayerNorm.Statistics(inputShape: [2, 4], means: [0], reciprocalStandardDeviations: [1]) } catch { sum += 1 }
    return sum
}

/// Forward and backward on an input RowParallel splits: the worker pool's helpers
/// run blocks (the pool starts its threads once and keeps them).
func parallelRound(_ f: Fixture, _ i: Int) throws -> Double {
    try Parallelism.withThreadCount(2) {
        let (y, statistics) = try f.norm.forwardForTraining(f.wide)
        let g = try f.norm.backward(outputGradient: f.wideDy, input: f.wide, statistics: statistics)
        return Double(y.scalars[i % y.scalarCount]) + Double(g.input.scalars[i % g.input.scalarCount])
    }
}

/// A malformed safetensors file (tensors overlap). Built per call, not held in a
/// global: valgrind takes a `Data` kept alive in a global for lost, since Swift stores
/// its storage pointer with enum tag bits set.
func badSafetensors() -> Data {
    let header = Array(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#.utf8)
    var d = Data()
    withUnsafeBytes(of: UInt64(header.count).littleEndian) { d.append(contentsOf: $0) }
    return d + header + [UInt8](repeating: 0, count: 12)
}

/// A malformed .npy (Fortran order, data too short).
func badNPY() -> Data {
    let header = Array("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }\n".utf8)
    return Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, UInt8(header.count), 0] + header
        + [UInt8](repeating: 0, count: 20))
}

/// safetensors and .npy in memory: encode, parse, convert, load a layer; the error
/// paths; every 256th iteration the same through files on disk (an atomic write
/// with its fsync costs far more than a round in memory, so more would dominate the
/// loop).
func fileRound(_ f: Fixture, _ i: Int) throws -> Double {
    var sum = 0.0
    let tensors: [String: Tensor] = [
        "h.0.ln_1.weight": f.norm.weight, "h.0.ln_1.bias": f.norm.bias,
        "wte.weight": Tensor.randomNormal([4, 16], seed: UInt64(i)),
    ]
    let data = try SafeTensors.encode(tensors, metadata: ["format": "pt", "iteration": String(i)])
    let file = try SafeTensors(data: data)
    sum += Double(file.names.count + file.normLayerNames.count + file.metadata.count)
    sum += Double(try file.tensor(named: "wte.weight").scalars[i % 64])
    let loaded = try LayerNorm(loading: "h.0.ln_1", from: file)
    sum += Double(loaded.weight.scalars[i % 768])
    do { _ = try file.tensor(named: "missing") } catch { sum += Double(error.description.utf8.count) }
    do { _ = try SafeTensors(data: badSafetensors()) } catch { sum += Double(error.description.utf8.count) }
    do { _ = try SafeTensors(data: data.prefix(40)) } catch { sum += 1 }

    let npy = try f.hard.npyData()
    let back = try Tensor(npyData: npy)
    sum += Double(back.scalars[i % back.scalarCount].isNaN ? 1 : 0) + Double(try NPYHeader(npyData: npy).dataOffset)
    do { _ = try Tensor(npyData: badNPY()) } catch { sum += Double(error.description.utf8.count) }
    do { _ = try Tensor(npyData: npy.prefix(100)) } catch { sum += 1 }

    if i % 256 == 0 {
        let st = f.directory.appendingPathComponent("model.safetensors")
        let np = f.directory.appendingPathComponent("x.npy")
        try SafeTensors.write(tensors, to: st)
        try f.x.writeNPY(to: np)
        sum += Double(try SafeTensors(contentsOf: st).tensor(named: "h.0.ln_1.bias").scalars[i % 768])
        sum += Double(try Tensor(npyContentsOf: np).scalars[i % 4096])
        do { _ = try Tensor(npyContentsOf: f.directory.appendingPathComponent("missing.npy")) } catch { sum += 1 }
        // An empty file (Foundation's reader leaked 4 KiB on each; FileAccess avoids it).
        let empty = f.directory.appendingPathComponent("empty.safetensors")
        try Data().write(to: empty)
        do { _ = try SafeTensors(contentsOf: empty) } catch { sum += 1 }
        do { try f.x.writeNPY(to: f.directory.appendingPathComponent("no/such/dir.npy")) } catch { sum += 1 }
    }
    return sum
}

/// One round of everything the library does, including its error paths. Returns a
/// checksum so no work can be optimised away.
func iteration(_ f: inout Fixture, _ i: Int) throws -> Double {
    var sum = 0.0
    let y = try f.norm(f.x)
    sum += Double(y.scalars[i % y.scalarCount])
    try f.norm.forward(f.x, into: &f.out)
    sum += Double(f.out.scalars[(i * 7) % f.out.scalarCount])
    let h = try f.norm(f.hard)
    sum += Double(h.scalars[768 + i % 768])

    // A fresh layer with its own parameters, on a reshaped input.
    var small = try LayerNorm(dim: 33, eps: 1e-6)
    small.weight = Tensor.randomNormal([33], seed: UInt64(i))
    small.bias = Tensor.ones([33])
    let z = try small(try Tensor.randomUniform([3, 11], seed: UInt64(i)).reshaped(to: [1, 33]))
    sum += Double(z.scalars[i % 33])
    sum += try Reference.layerNormDouble(z, eps: 1e-6)[0]
    sum += Double(z.description.utf8.count)

    // Error paths: each error carries arrays and strings.
    do { _ = try f.norm(Tensor.zeros([2, 767])) } catch { sum += Double(error.description.utf8.count) }
    do { _ = try LayerNorm(dim: 0) } catch { sum += 1 }
    do { _ = try LayerNorm(dim: 8, eps: .nan) } catch { sum += 1 }
    do { _ = try Tensor(shape: [2, 3], scalars: [1]) } catch { sum += Double(error.description.utf8.count) }
    do { _ = try f.x.reshaped(to: [5, 5]) } catch { sum += 1 }
    do { _ = try Tensor(validatingShape: [Int.max, 2], repeating: 0) } catch { sum += 1 }
    var wrong = f.norm
    wrong.bias = Tensor.zeros([767])
    do { _ = try wrong(f.x) } catch { sum += 1 }

    sum += try backwardRound(&f, i)
    if i % 4 == 2 { sum += try rmsRound(f, i) }
    if i % 4 == 0 { sum += try parallelRound(f, i) }  // each costs a pool hand-off
    sum += try fileRound(f, i)
    return sum
}

/// What --inject-leak leaks.
final class LeakedBytes {
    let bytes: [UInt8]
    init(_ i: Int) { bytes = [UInt8](repeating: UInt8(truncatingIfNeeded: i | 1), count: 16 * 1024) }
}

/// The loop, its options and its verdict (exit 1 when resident memory grew).
struct LeakCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "leak-check",
        abstract: "A long loop of every NormKit call; fails when resident memory grows after warm-up (scripts/leak-check.sh also runs it under valgrind)."
    )

    // Unconditional: `--iterations -5` is a value, refused with its range (as every numeric flag).
    @Option(parsing: .unconditional, help: "Loop iterations, 1...100000000.") var iterations = 2000
    @Flag(help: "Leak 16 KiB per iteration on purpose, so a check can prove it is able to fail.") var injectLeak = false
    @Flag(name: .customLong("no-rss"), help: "Skip the resident-memory check (under valgrind).") var noRSS = false
    @Option(name: .customLong("rss-limit-kib"), parsing: .unconditional, help: "Allowed resident-memory growth after warm-up, KiB (>= 0).") var rssLimitKiB = 4096
    @Flag(help: "Instead of the loop: count the allocations of the allocation-free forms (run with scripts/malloc-counter.c preloaded).")
    var countAllocations = false

    func validate() throws {
        _ = try CommandInput.integer(iterations, flag: "--iterations", in: 1...100_000_000)
        _ = try CommandInput.integer(rssLimitKiB, flag: "--rss-limit-kib", in: 0...Int.max)
    }

    func run() throws {
        if countAllocations {
            let status = allocationCheck()
            if status != 0 { throw ExitCode(status) }
            return
        }
        var fixture = try Fixture()
        var checksum = 0.0
        let warmup = max(1, iterations / 5)
        var baseline: Int?
        var peak = 0
        for i in 0..<iterations {
            checksum += try iteration(&fixture, i)
            if injectLeak {
                // 16 KiB, written (so resident), retained once more than released: lost for good.
                let box = Unmanaged.passRetained(LeakedBytes(i)).toOpaque()
                checksum += Double(Int(bitPattern: box) & 1)
            }
            if i + 1 == warmup { baseline = residentKiB() }
            if let r = residentKiB(), i % 64 == 0 { peak = max(peak, r) }
        }
        let end = residentKiB()
        try? FileManager.default.removeItem(at: fixture.directory)
        print("leak-check: \(iterations) iterations, checksum \(checksum)")
        if !noRSS {
            guard let baseline, let end else {
                #if os(Linux)
                // CI runs here: a check that cannot look must not pass.
                print("leak-check: FAILED: /proc/self/statm is not readable, so the RSS check cannot run")
                throw ExitCode(1)
                #else
                print("leak-check: SKIP RSS check: resident memory is only read on Linux (/proc/self/statm)")
                return
                #endif
            }
            let growth = end - baseline
            print("leak-check: RSS after warm-up (\(warmup) iterations) \(baseline) KiB, at end \(end) KiB, "
                  + "growth \(growth) KiB (limit \(rssLimitKiB) KiB), peak \(max(peak, end)) KiB")
            if growth > rssLimitKiB {
                print("leak-check: FAIL: resident memory grew by \(growth) KiB")
                throw ExitCode(1)
            }
        }
    }
}
