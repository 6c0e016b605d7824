// How many threads NormKit's kernels may use, process-wide and per scope.
//
// The process-wide count is one atomic `Int` (Synchronization's `Atomic`), read on every
// forward call: no lock is held on the forward path, so a child forked while another
// thread was reading it cannot inherit a locked mutex (docs/reliability.md, "fork()").
// Only macOS before 15, which lacks
// `Atomic`, keeps a pthread mutex. A scoped override is a task-local value, so a test or
// a request handler can pin its own calls to a thread count without racing other tasks
// that read the global one.

import CNormKernels  // the C library (include/nk_platform.h)

import Synchronization

/// The number of threads NormKit's kernels may use.
///
/// A call splits its rows across at most ``threadCount`` threads, the caller's own
/// thread included; inputs too small to gain from it (a few hundred KB) stay on the
/// caller's thread. The result does not depend on the thread count: every output is
/// bitwise identical for 1, 2 or 64 threads, at one ``InstructionSet`` level and one
/// OpenBLAS kernel (see <doc:AccuracyAndReproducibility>).
///
/// The default is the `NORMKIT_THREADS` environment variable when it holds a whole
/// number >= 1 (clamped to ``maxThreadCount``; surrounding whitespace ignored), read
/// once at first use, and otherwise the number of online cores: `0`, `-1` or `abc` are
/// refused with one line on stderr, an empty value means "not set" (docs/reliability.md
/// lists what each gets).
///
/// ```swift
/// Parallelism.threadCount = 1                      // every call from now on, process-wide
/// let y = try Parallelism.withThreadCount(2) {     // only calls inside this scope (this task)
///     try norm(x)
/// }
/// ```
///
/// Both are safe to use from any thread or task at any time.
public enum Parallelism {
    /// The largest thread count NormKit accepts; larger requests are clamped to it.
    public static let maxThreadCount = 256

    /// The thread count when nothing was set: `NORMKIT_THREADS` if it is a whole number
    /// >= 1 (clamped to ``maxThreadCount``), otherwise the number of active cores. A value
    /// that is set but not a whole number >= 1 is refused with one line on stderr, as a
    /// wrong `NORMKIT_ISA` is (both are read by `EnvironmentSetting`).
    public static let defaultThreadCount: Int = {
        guard let raw = getenv("NORMKIT_THREADS") else { return activeProcessorCount }
        let choice = threadChoice(environmentValue: String(cString: raw))
        if let warning = choice.warning { EnvironmentSetting.warn(warning) }
        return choice.count ?? activeProcessorCount
    }()

    /// The thread count a `NORMKIT_THREADS` value asks for, or nil when it is empty or
    /// not a whole number >= 1 (then the core count is used).
    static func threadCount(environmentValue text: String) -> Int? {
        threadChoice(environmentValue: text).count
    }

    /// What a `NORMKIT_THREADS` value selects, and the warning when it is refused. The
    /// rule every NormKit environment variable follows (`EnvironmentSetting.trimmed`):
    /// surrounding whitespace is ignored and an empty value means "not set". Then decimal
    /// digits with an optional `+`, nothing else (no inner spaces, signs, fractions or
    /// hex). A number beyond `Int` is as "huge" as `1000` and is clamped the same way, to
    /// ``maxThreadCount``.
    static func threadChoice(environmentValue text: String) -> (count: Int?, warning: String?) {
        guard let value = EnvironmentSetting.trimmed(text) else { return (nil, nil) }
        let refused = "NORMKIT_THREADS must be a whole number >= 1, got '\(EnvironmentSetting.shown(text))'; using the number of cores, \(activeProcessorCount)"
        var digits = Substring(value)
        if digits.first == "+" { digits = digits.dropFirst() }
        guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            return (nil, refused)
        }
        guard let n = Int(digits) else { return (maxThreadCount, nil) }  // digits only, so it overflowed
        return n >= 1 ? (min(n, maxThreadCount), nil) : (nil, refused)
    }

    /// The number of online cores (`sysconf(_SC_NPROCESSORS_ONLN)`).
    public static let activeProcessorCount: Int = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))

    /// The process-wide thread count, ``defaultThreadCount`` until set. Values are clamped
    /// into `1...maxThreadCount` (0 or a negative number means 1). A
    /// ``withThreadCount(_:_:)`` scope takes precedence over it.
    public static var threadCount: Int {
        get { global.value }
        set { global.value = clamp(newValue) }
    }

    /// Runs `body` with NormKit calls made inside it (in this task or thread, and in
    /// child tasks) limited to `count` threads, clamped as ``threadCount`` is.
    public static func withThreadCount<R>(_ count: Int, _ body: () throws -> R) rethrows -> R {
        try $scoped.withValue(clamp(count), operation: body)
    }

    /// Runs the async `body` with NormKit calls made inside it limited to `count` threads.
    public static func withThreadCount<R>(
        _ count: Int, isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> R
    ) async rethrows -> R {
        try await $scoped.withValue(clamp(count), operation: body, isolation: isolation)
    }

    /// The thread count in force here: the innermost ``withThreadCount(_:_:)`` scope,
    /// else ``threadCount``.
    public static var effectiveThreadCount: Int {
        scoped ?? global.value
    }

    @TaskLocal static var scoped: Int?

    static func clamp(_ n: Int) -> Int { min(max(n, 1), maxThreadCount) }

    private static let global = SharedInt(defaultThreadCount)
}

/// An `Int` that any thread may read and write: an atomic where Synchronization has one.
private final class SharedInt: Sendable {
    // `any Sendable` so the class itself needs no availability: an `AtomicBox` on
    // Linux and macOS 15+, a `LockedInt` before.
    private let box: any Sendable

    init(_ value: Int) {
        if #available(macOS 15.0, iOS 18.0, tvOS 18.0, watchOS 11.0, visionOS 2.0, *) {
            box = AtomicBox(value)
        } else {
            box = LockedInt(value)
        }
    }

    var value: Int {
        get {
            if #available(macOS 15.0, iOS 18.0, tvOS 18.0, watchOS 11.0, visionOS 2.0, *),
               let atomic = box as? AtomicBox {
                return atomic.storage.load(ordering: .relaxed)
            }
            return (box as! LockedInt).value
        }
        set {
            if #available(macOS 15.0, iOS 18.0, tvOS 18.0, watchOS 11.0, visionOS 2.0, *),
               let atomic = box as? AtomicBox {
                atomic.storage.store(newValue, ordering: .relaxed)
                return
            }
            (box as! LockedInt).value = newValue
        }
    }
}

@available(macOS 15.0, iOS 18.0, tvOS 18.0, watchOS 11.0, visionOS 2.0, *)
private final class AtomicBox: Sendable {
    let storage: Atomic<Int>
    init(_ value: Int) { storage = Atomic(value) }
}

/// An `Int` behind a pthread mutex (macOS before 15 only; not fork-safe).
private final class LockedInt: @unchecked Sendable {
    // @unchecked: `storage` is only read or written with `mutex` held.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var storage: Int

    init(_ value: Int) {
        storage = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    var value: Int {
        get {
            pthread_mutex_lock(mutex)
            defer { pthread_mutex_unlock(mutex) }
            return storage
        }
        set {
            pthread_mutex_lock(mutex)
            storage = newValue
            pthread_mutex_unlock(mutex)
        }
    }
}
