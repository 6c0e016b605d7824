// Seeded, reproducible inputs for the property, concurrency and reliability tests.
//
// Every random choice comes from one SplitMix64 stream per case, and every case's
// seed is printed when the case fails, with the environment variables that replay it
// alone. Nothing depends on the clock, the thread or the run order.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NormKit
import Testing

extension Tag {
    /// Seeded property tests (PropertyTests.swift).
    @Tag static var property: Self
    /// Many tasks or threads at once (ConcurrencyTests.swift).
    @Tag static var concurrency: Self
    /// Bad or extreme input (ReliabilityTests.swift).
    @Tag static var reliability: Self
    /// Exit tests: run a child process that is expected to trap (or, once fixed, not to).
    @Tag static var exitTest: Self
}

/// SplitMix64 (Steele, Lea, Flood 2014), the same generator as NormKit's own
/// `randomNormal`, copied here so the tests do not depend on NormKit internals.
struct TestRNG: RandomNumberGenerator, Sendable {
    private var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Uniform in [lo, hi).
    mutating func uniform(_ lo: Double, _ hi: Double) -> Double { lo + (hi - lo) * unit() }

    /// Uniform integer in `range`.
    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &self) }

    mutating func bool() -> Bool { next() & 1 == 1 }

    mutating func sign() -> Double { bool() ? 1 : -1 }

    /// Standard normal (Box–Muller; one value per call is plenty here).
    mutating func gaussian() -> Double {
        let u1 = 1 - unit()
        let u2 = unit()
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }

    /// 10^e with e uniform in [lo, hi): magnitudes spread evenly over decades.
    mutating func decades(_ lo: Double, _ hi: Double) -> Double { pow(10, uniform(lo, hi)) }

    mutating func pick<T>(_ choices: [T]) -> T { choices[int(0...(choices.count - 1))] }

    /// A uniformly random permutation of 0..<n (Fisher–Yates).
    mutating func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        if n > 1 {
            for i in stride(from: n - 1, to: 0, by: -1) { p.swapAt(i, int(0...i)) }
        }
        return p
    }
}

/// A Double rounded to the nearest Float, clamped to the finite range (so a
/// generated magnitude of 10^38.7 becomes Float.greatestFiniteMagnitude, not inf).
@inline(__always) func finiteFloat(_ v: Double) -> Float {
    Float(max(min(v, Double(Float.greatestFiniteMagnitude)), -Double(Float.greatestFiniteMagnitude)))
}

/// The kinds of finite rows the generator makes. Each one aims at a different part
/// of the forward kernel: the fast path, the careful path's scaling and re-centring,
/// the eps term, and rounding patterns that are the same in every element.
enum RowFamily: String, CaseIterable, Sendable {
    case gaussian          // σ·randn, σ = 10^[-3, 3): the fast path
    case offset            // c + σ·randn with |c|/σ up to 10^7: cancellation, careful path
    case integers          // small integers plus a large integer offset, all exact in Float
    case twoValues         // only two distinct (possibly adjacent) values
    case outlier           // randn with one or two elements up to 10^30
    case tiny              // randn·10^[-44, -25): tiny and subnormal values
    case huge              // randn·10^[20, 37.5): squares overflow Float
    case nearEps           // variance within 10^±1.5 of eps: the eps term matters
    case constant          // one value repeated: output must be exactly the bias
    case alternating       // ±c with one full-mantissa c: the same rounding everywhere
    case mixedMagnitude    // each element ±10^[-40, 38]
    case maxMagnitude      // elements near ±Float.greatestFiniteMagnitude
    case uniformPositive   // U(0, 1): mean² > variance, careful path at ordinary scale
}

/// Generates rows, dims, eps values and parameters from one seeded stream.
struct RowGenerator {
    var rng: TestRNG

    init(seed: UInt64) { rng = TestRNG(seed: seed) }

    /// A row length: mostly small and odd (rows then start at every alignment),
    /// sometimes the GPT-2 sizes, rarely past BLAS.maxChunk (8192) so the chunked
    /// BLAS calls are crossed.
    mutating func dim(allowLarge: Bool = true) -> Int {
        let r = rng.unit()
        if r < 0.55 { return rng.pick([1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65]) }
        if r < 0.85 || !allowLarge { return rng.pick([100, 127, 255, 256, 384, 768, 1000, 1024]) }
        if r < 0.97 { return rng.pick([2049, 3072, 4099]) }
        return rng.pick([8192, 8193, 16411])
    }

    /// An eps: usually the default, otherwise anywhere from 1e-12 to 1.
    mutating func eps() -> Float {
        rng.unit() < 0.5 ? 1e-5 : Float(rng.decades(-12, 0))
    }

    /// A case for the exact form of scale-and-shift invariance, shared by the forward
    /// and backward properties: x = small integers in [-k, k], a = 2^p, c an integer
    /// below 2^23 - k, eps1 = eps0·a² (p halved until eps1 is a normal float), and
    /// shifted = a·(x + c). Every value is exact in Float, so LN_eps1(shifted) = LN_eps0(x)
    /// with no eps effect. (The draws keep their order, so a seed replays the same case.)
    mutating func exactScaleShiftCase() throws -> (
        dim: Int, k: Int, c: Int, p: Int, a: Double, eps0: Float, eps1: Float, x: Tensor, shifted: Tensor
    ) {
        let dim = dim()
        let k = 1 << rng.int(0...11)
        let ints = (0..<dim).map { _ in rng.int(-k...k) }
        let c = rng.int(-((1 << 23) - k)...((1 << 23) - k))
        var p = rng.int(-40...60)
        let eps0 = eps()
        var eps1 = eps0 * Float(sign: .plus, exponent: 2 * p, significand: 1)
        while !(eps1.isNormal && eps1.isFinite) {
            p /= 2
            eps1 = eps0 * Float(sign: .plus, exponent: 2 * p, significand: 1)
        }
        let a = Double(sign: .plus, exponent: p, significand: 1)
        let x = try Tensor(shape: [1, dim], scalars: ints.map { Float($0) })
        let shifted = try Tensor(shape: [1, dim], scalars: ints.map { Float(Double($0 + c) * a) })
        return (dim, k, c, p, a, eps0, eps1, x, shifted)
    }

    mutating func family() -> RowFamily { rng.pick(RowFamily.allCases) }

    /// One finite row of `dim` elements from `family`.
    mutating func row(_ family: RowFamily, dim n: Int, eps: Float = 1e-5) -> [Float] {
        var row = [Float](repeating: 0, count: n)
        switch family {
        case .gaussian:
            let s = rng.decades(-3, 3)
            for i in 0..<n { row[i] = Float(s * rng.gaussian()) }
        case .offset:
            let s = rng.decades(-4, 4)
            let c = rng.sign() * s * rng.decades(-1, 7)
            for i in 0..<n { row[i] = finiteFloat(c + s * rng.gaussian()) }
        case .integers:
            let k = 1 << rng.int(0...11)
            let j = rng.int(0...23)
            let c = rng.int(-(1 << j)...(1 << j))  // |c + k| < 2^24: exact
            for i in 0..<n { row[i] = Float(c + rng.int(-k...k)) }
        case .twoValues:
            let a = Float(rng.sign() * rng.decades(-20, 20))
            let b: Float = rng.bool()
                ? a + Float(rng.int(1...4)) * a.ulp * Float(rng.sign())
                : Float(rng.sign() * rng.decades(-20, 20))
            for i in 0..<n { row[i] = rng.bool() ? a : b }
            if n >= 2 { row[0] = a; row[n - 1] = b }
        case .outlier:
            for i in 0..<n { row[i] = Float(rng.gaussian()) }
            for _ in 0..<rng.int(1...2) {
                row[rng.int(0...(n - 1))] = Float(rng.sign() * rng.decades(1, 30))
            }
        case .tiny:
            let s = rng.decades(-44, -25)
            for i in 0..<n { row[i] = Float(s * rng.gaussian()) }
        case .huge:
            let s = rng.decades(20, 37.5)
            for i in 0..<n { row[i] = finiteFloat(s * rng.gaussian()) }
        case .nearEps:
            let s = Double(eps).squareRoot() * rng.decades(-1.5, 1.5)
            for i in 0..<n { row[i] = Float(s * rng.gaussian()) }
        case .constant:
            let c: Float = rng.unit() < 0.1 ? 0 : finiteFloat(rng.sign() * rng.decades(-45, 38.5))
            for i in 0..<n { row[i] = c }
        case .alternating:
            let c = Float(rng.decades(-10, 10))
            for i in 0..<n { row[i] = rng.bool() ? c : -c }
        case .mixedMagnitude:
            for i in 0..<n { row[i] = finiteFloat(rng.sign() * rng.decades(-40, 38.5)) }
        case .maxMagnitude:
            for i in 0..<n {
                row[i] = finiteFloat(rng.sign() * Double(Float.greatestFiniteMagnitude) * rng.uniform(0.5, 1))
            }
            row[rng.int(0...(n - 1))] = rng.bool() ? .greatestFiniteMagnitude : -.greatestFiniteMagnitude
        case .uniformPositive:
            for i in 0..<n { row[i] = Float(rng.unit()) }
        }
        return row
    }

    /// A row holding NaN or ±infinity somewhere (for neighbour-independence tests).
    mutating func nonFiniteRow(dim n: Int) -> [Float] {
        var row = self.row(.gaussian, dim: n)
        row[rng.int(0...(n - 1))] = rng.pick([Float.nan, .infinity, -.infinity])
        return row
    }

    /// A weight: mostly near 1, sometimes with zeros and negative entries.
    mutating func weight(dim n: Int) -> [Float] {
        let spread = rng.pick([0.0, 0.1, 1, 3])
        return (0..<n).map { _ in
            rng.unit() < 0.05 ? 0 : Float(1 + spread * rng.gaussian())
        }
    }

    /// A bias: zeros or small random values.
    mutating func bias(dim n: Int) -> [Float] {
        let spread = rng.pick([0.0, 0.01, 1, 10])
        return (0..<n).map { _ in Float(spread * rng.gaussian()) }
    }
}

// MARK: - Running seeded cases

/// Runs a property over many seeded cases and reports failures with the seed that
/// replays them.
///
/// The base seed is fixed per property (a hash of its name), so CI runs the same
/// cases every time; case `i` uses `base &+ i·γ`. Set `NORMKIT_PROPERTY_SEED` to replay
/// one case (it becomes case 0) or to explore new ones, and `NORMKIT_PROPERTY_CASES` to
/// run more or fewer cases:
///
///     NORMKIT_PROPERTY_SEED=0x… NORMKIT_PROPERTY_CASES=1 swift test --filter '<test name>'
enum PropertyRun {
    static let gamma: UInt64 = 0x9E37_79B9_7F4A_7C15
    /// At most this many failing cases are reported per property (the rest are counted).
    static let maxReported = 3

    static func environment(_ name: String) -> String? {
        guard let p = getenv(name) else { return nil }
        return String(cString: p)
    }

    static func parseSeed(_ text: String) -> UInt64? {
        let t = text.lowercased()
        if t.hasPrefix("0x") { return UInt64(t.dropFirst(2), radix: 16) }
        return UInt64(t)
    }

    /// FNV-1a of the property's name: a stable default seed per property.
    static func defaultSeed(_ name: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in name.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        return h
    }

    static func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }

    /// Calls `body` once per case with a generator seeded for that case and a checker
    /// that collects violations; records one issue per failing case (seed included).
    static func check(
        _ name: String, cases defaultCases: Int,
        sourceLocation: SourceLocation = #_sourceLocation,
        _ body: (inout RowGenerator, inout PropertyChecker) throws -> Void
    ) {
        let base = environment("NORMKIT_PROPERTY_SEED").flatMap(parseSeed) ?? defaultSeed(name)
        // A third of the cases under a sanitizer (`Sanitizer`: it looks for memory errors
        // and races, which the shapes of a third already reach; the plain runs take all).
        let cases = environment("NORMKIT_PROPERTY_CASES").flatMap { Int($0) }
            ?? (Sanitizer.any ? max(1, defaultCases / 3) : defaultCases)
        var failures = 0
        for i in 0..<cases {
            let seed = base &+ UInt64(i) &* gamma
            var generator = RowGenerator(seed: seed)
            var checker = PropertyChecker()
            do {
                try body(&generator, &checker)
            } catch {
                checker.violations.append("threw \(error)")
            }
            guard !checker.violations.isEmpty else { continue }
            failures += 1
            if failures <= maxReported {
                let shown = checker.violations.prefix(5).joined(separator: "\n  ")
                Issue.record(
                    """
                    property '\(name)' failed at case \(i) of \(cases), seed \(hex(seed)):
                      \(shown)
                    replay: NORMKIT_PROPERTY_SEED=\(hex(seed)) NORMKIT_PROPERTY_CASES=1 swift test --filter '\(name)'
                    """, sourceLocation: sourceLocation)
            }
        }
        if failures > maxReported {
            Issue.record("property '\(name)': \(failures) of \(cases) cases failed (first \(maxReported) shown)",
                         sourceLocation: sourceLocation)
        }
    }
}

/// Collects the violations of one property case.
struct PropertyChecker {
    var violations: [String] = []

    /// Records `message()` when `condition` is false (NaN comparisons are false, so a
    /// NaN where a number was expected is a violation).
    mutating func require(_ condition: Bool, _ message: @autoclosure () -> String) {
        if !condition { violations.append(message()) }
    }
}

// MARK: - Small helpers shared by the test files

/// Row `r` of a row-major buffer with rows of `dim` elements.
func rowSlice(_ scalars: [Float], _ r: Int, dim: Int) -> ArraySlice<Float> {
    scalars[(r * dim)..<((r + 1) * dim)]
}

/// Bitwise equality of two float sequences (NaN equals NaN of the same payload; 0 ≠ -0).
func bitwiseEqual<A: Sequence<Float>, B: Sequence<Float>>(_ a: A, _ b: B) -> Bool {
    a.map(\.bitPattern) == b.map(\.bitPattern)
}

/// How many elements satisfy `predicate` (for `#expect(countWhere(…) == 0)`, which
/// prints a count on failure rather than the whole tensor).
func countWhere(_ xs: some Sequence<Float>, _ predicate: (Float) -> Bool) -> Int {
    xs.reduce(0) { $0 + (predicate($1) ? 1 : 0) }
}

/// nil when `a` and `b` are bitwise equal, else a short description of how they
/// differ (so a failing `#expect` does not print whole tensors).
func bitwiseMismatch<A: Collection<Float>, B: Collection<Float>>(_ a: A, _ b: B) -> String? {
    if a.count != b.count { return "counts differ: \(a.count) vs \(b.count)" }
    var first: String?
    var count = 0
    for (i, (x, y)) in zip(a, b).enumerated() where x.bitPattern != y.bitPattern {
        if first == nil { first = "element \(i): \(x) vs \(y)" }
        count += 1
    }
    return first.map { "\(count) of \(a.count) elements differ; first at \($0)" }
}

/// The exact mean and biased variance of a float row, two-pass in Double with one
/// correction step. Independent of `Reference` on purpose: the properties should not
/// trust the code they would share a bug with.
func doubleMeanAndVariance(_ x: some Collection<Float>) -> (mean: Double, variance: Double) {
    let n = Double(x.count)
    var mean = x.reduce(0.0) { $0 + Double($1) } / n
    mean += x.reduce(0.0) { $0 + (Double($1) - mean) } / n
    let variance = x.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / n
    return (mean, variance)
}

/// The elements LayerNorm's sampled shift reads in a row of n (the kernel layer's
/// `nk_ln_sampled_shift_body`, docs/numerics.md, "The shift"): all of a row shorter than
/// 32, else four runs of 8, run q from ⌊(2q + 1)·n/8⌋ - 4. Tests that build a misleading
/// sample write there.
func sampledPositions(_ n: Int) -> [Int] {
    if n < 32 { return Array(0..<n) }
    var positions: [Int] = []
    for q in 0..<4 {
        let start: Int = (2 * q + 1) * n / 8 - 4
        positions += Array(start ..< start + 8)
    }
    return positions
}
