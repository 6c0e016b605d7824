// A long loop of NormKit calls, for scripts/leak-check.sh.
//
// Run alone, it checks that resident memory does not grow once warmed up (a leak of
// even one tensor per call would add megabytes); run under valgrind with --no-rss,
// memcheck reports anything definitely or indirectly lost. --inject-leak leaks 16 KiB
// per iteration on purpose, so the script can prove each check is able to fail.
//
// Round two: add the backward pass, the file parsers and NORMKIT_THREADS settings to
// `iteration(_:)`.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NormKit

struct Options {
    var iterations = 2000
    var injectLeak = false
    var checkRSS = true
    var rssLimitKiB = 4096

    init(_ args: ArraySlice<String>) {
        var it = args.makeIterator()
        while let a = it.next() {
            switch a {
            case "--iterations": iterations = Int(it.next() ?? "") ?? iterations
            case "--inject-leak": injectLeak = true
            case "--no-rss": checkRSS = false
            case "--rss-limit-kib": rssLimitKiB = Int(it.next() ?? "") ?? rssLimitKiB
            default:
                print("usage: normkit-leakcheck [--iterations N] [--inject-leak] [--no-rss] [--rss-limit-kib K]")
                exit(2)
            }
        }
    }
}

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
    }
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
    return sum
}

/// What --inject-leak leaks.
final class LeakedBytes {
    let bytes: [UInt8]
    init(_ i: Int) { bytes = [UInt8](repeating: UInt8(truncatingIfNeeded: i | 1), count: 16 * 1024) }
}

let options = Options(CommandLine.arguments.dropFirst())
var fixture = try Fixture()
var checksum = 0.0
let warmup = max(1, options.iterations / 5)
var baseline: Int?
var peak = 0
for i in 0..<options.iterations {
    checksum += try iteration(&fixture, i)
    if options.injectLeak {
        // 16 KiB, written (so resident), retained once more than released: lost for good.
        let box = Unmanaged.passRetained(LeakedBytes(i)).toOpaque()
        checksum += Double(Int(bitPattern: box) & 1)
    }
    if i + 1 == warmup { baseline = residentKiB() }
    if let r = residentKiB(), i % 64 == 0 { peak = max(peak, r) }
}
let end = residentKiB()
print("normkit-leakcheck: \(options.iterations) iterations, checksum \(checksum)")
if options.checkRSS {
    guard let baseline, let end else {
        print("normkit-leakcheck: resident memory not readable here; RSS check skipped")
        exit(0)
    }
    let growth = end - baseline
    print("normkit-leakcheck: RSS after warm-up (\(warmup) iterations) \(baseline) KiB, at end \(end) KiB, "
          + "growth \(growth) KiB (limit \(options.rssLimitKiB) KiB), peak \(max(peak, end)) KiB")
    if growth > options.rssLimitKiB {
        print("normkit-leakcheck: FAIL: resident memory grew by \(growth) KiB")
        exit(1)
    }
}
