// Which instruction-set level NormKit's kernels run at (the C target CNormKernels
// holds each kernel compiled once per level; docs/architecture.md, "Kernel layer").
//
// The level is chosen once per process: `NORMKIT_ISA` when it names a level this CPU
// has, else the best level the CPU and OS support. A scoped override (a task-local
// value, like `Parallelism.withThreadCount`) lets a test or a benchmark run its calls
// at another supported level. A level the CPU lacks is never used: asking for it
// throws (the API) or is refused with a message on stderr (the environment variable),
// so unsupported instructions are never reached.

import CNormKernels

/// The instruction-set level of NormKit's kernels.
///
/// ```swift
/// print(InstructionSet.current)                  // avx512 on a Zen 4, baseline on arm64
/// let y = try InstructionSet.with(.avx2) {       // only calls inside this scope (this task)
///     try norm(x)
/// }
/// ```
///
/// Every level meets the same accuracy bounds; results may differ in the last bits
/// between levels (a fused multiply-add rounds once), and at each level they are
/// bitwise the same for every thread count.
public enum InstructionSet: String, Sendable, CaseIterable, Comparable, CustomStringConvertible {
    /// Portable code: SSE2 on x86-64, NEON on arm64. Runs everywhere.
    case baseline
    /// AVX2 with FMA (x86-64).
    case avx2
    /// AVX-512 F, VL, BW and DQ (x86-64), with the OS saving the AVX-512 state.
    case avx512

    /// The level's name, as `NORMKIT_ISA` and `normkit --isa` spell it.
    public var description: String { rawValue }

    /// Lower levels first: `baseline < avx2 < avx512`.
    public static func < (a: InstructionSet, b: InstructionSet) -> Bool { a.code < b.code }

    /// The best level this CPU and OS support (cpuid and xgetbv; ``baseline`` off x86-64).
    public static let detected: InstructionSet = InstructionSet(code: nk_isa_detected()) ?? .baseline

    /// Every level this machine can run, lowest first.
    public static var supported: [InstructionSet] { allCases.filter { $0 <= detected } }

    /// The process-wide level: `NORMKIT_ISA` (read once, at first use) when it names a
    /// supported level, else ``detected``. An unknown or unsupported value is refused with
    /// one line on stderr, and ``detected`` is used.
    public static let processDefault: InstructionSet = {
        guard let raw = getenv("NORMKIT_ISA") else { return detected }
        let choice = fromEnvironment(String(cString: raw), detected: detected)
        if let warning = choice.warning { EnvironmentSetting.warn(warning) }
        return choice.level
    }()

    /// What a `NORMKIT_ISA` value selects on a CPU whose best level is `detected`, and
    /// the warning to print when the value is refused. As for every NormKit environment
    /// variable (`EnvironmentSetting.trimmed`), surrounding whitespace is ignored and an
    /// empty value means "not set"; the name is case-insensitive.
    static func fromEnvironment(_ text: String, detected: InstructionSet) -> (level: InstructionSet, warning: String?) {
        guard let value = EnvironmentSetting.trimmed(text) else { return (detected, nil) }
        guard let level = InstructionSet(rawValue: value.lowercased()) else {
            return (detected, "NORMKIT_ISA must be one of \(names(allCases)), got '\(EnvironmentSetting.shown(text))'; using \(detected)")
        }
        guard level <= detected else {
            return (detected, "NORMKIT_ISA=\(level) is not supported by this CPU (it supports \(names(supported(upTo: detected)))); using \(detected)")
        }
        return (level, nil)
    }

    /// The level in force here: the innermost ``with(_:_:)`` scope, else ``processDefault``.
    public static var current: InstructionSet { scoped ?? processDefault }

    /// Runs `body` with NormKit calls made inside it (in this task or thread, and in child
    /// tasks) at `level`.
    ///
    /// - Throws: ``NormKitError/invalidArgument(name:expected:actual:)`` when this CPU lacks
    ///   `level` (then `body` does not run), or what `body` throws.
    public static func with<R>(_ level: InstructionSet, _ body: () throws -> R) throws -> R {
        try check(level, detected: detected)
        return try $scoped.withValue(level, operation: body)
    }

    /// Runs the async `body` with NormKit calls made inside it at `level`.
    ///
    /// - Throws: as the synchronous `with(_:_:)`.
    public static func with<R>(
        _ level: InstructionSet, isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> R
    ) async throws -> R {
        try check(level, detected: detected)
        return try await $scoped.withValue(level, operation: body, isolation: isolation)
    }

    /// Throws unless a CPU whose best level is `detected` can run `level`.
    static func check(_ level: InstructionSet, detected: InstructionSet) throws(NormKitError) {
        guard level <= detected else {
            throw .invalidArgument(name: "instruction set", expected: "one this CPU supports (\(names(supported(upTo: detected))))",
                                   actual: level.rawValue)
        }
    }

    /// The level `name` spells (`baseline`, `avx2`, `avx512`), if this CPU supports it.
    ///
    /// - Throws: ``NormKitError/invalidArgument(name:expected:actual:)`` for an unknown
    ///   name, or a level this CPU lacks.
    public init(supportedNamed name: String) throws(NormKitError) {
        guard let level = InstructionSet(rawValue: name.lowercased()) else {
            throw .invalidArgument(name: "instruction set", expected: "one of \(Self.names(Self.allCases))", actual: "'\(name)'")
        }
        try Self.check(level, detected: Self.detected)
        self = level
    }

    @TaskLocal static var scoped: InstructionSet?

    /// The CNormKernels level number.
    var code: Int32 {
        switch self {
        case .baseline: NK_ISA_BASELINE
        case .avx2: NK_ISA_AVX2
        case .avx512: NK_ISA_AVX512
        }
    }

    init?(code: Int32) {
        guard let level = Self.allCases.first(where: { $0.code == code }) else { return nil }
        self = level
    }

    static func supported(upTo best: InstructionSet) -> [InstructionSet] { allCases.filter { $0 <= best } }

    static func names(_ levels: [InstructionSet]) -> String { levels.map(\.rawValue).joined(separator: ", ") }
}
