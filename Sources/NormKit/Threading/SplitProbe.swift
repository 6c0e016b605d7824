// Per-call evidence of a thread split, for tests.
//
// `WorkerPool.helperParts` counts for the whole process, and tests run in parallel, so
// it cannot say whether *this* call was split. A test binds `SplitProbe.$current` to a
// fresh `SplitProbe` around its call; every row-parallel launch made in that scope (on
// the task's own threads) records how many threads ran at least one of its blocks.
// Outside such a scope the launcher reads one task-local (nil) and records nothing.
//
// A probe made with `requiresSplit: true` also changes what the launches do: each waits
// for the shared pool instead of running serially when a neighbour holds it, and lets
// every helper it asked for claim a block before it claims any itself (WorkerPool's
// "strict" call). A launch in such a scope then runs on exactly min(threads, blocks)
// threads, so a test proves its split with one call instead of retrying until a
// helper happened to join (a parallel test run kept the pool busy for seconds).

import CNormKernels  // the C library (include/nk_platform.h)

/// What the row-parallel launches in a scope did: how many there were and the most
/// threads that ran blocks of any one of them (1: that launch ran serially, for
/// example because the pool was busy with another caller's job).
package final class SplitProbe: @unchecked Sendable {
    // @unchecked: both counters are only touched under `lock`.
    private let lock: UnsafeMutablePointer<pthread_mutex_t>
    private var _launches = 0
    private var _maxThreads = 0

    /// The probe that launches in this task record into (tests only; nil otherwise).
    @TaskLocal package static var current: SplitProbe?

    /// Whether the launches in this probe's scope must really split (see above).
    package let requiresSplit: Bool

    package init(requiresSplit: Bool = false) {
        self.requiresSplit = requiresSplit
        lock = .allocate(capacity: 1)
        lock.initialize(to: pthread_mutex_t())
        pthread_mutex_init(lock, nil)
    }

    deinit {
        pthread_mutex_destroy(lock)
        lock.deallocate()
    }

    /// Row-parallel launches recorded (0: every call in the scope ran on the caller's
    /// thread without reaching the launcher, as inputs below two blocks do).
    package var launches: Int { locked { _launches } }

    /// The most threads (the caller's included) that ran blocks of one launch.
    package var maxThreads: Int { locked { _maxThreads } }

    func record(threads: Int) {
        locked {
            _launches += 1
            _maxThreads = max(_maxThreads, threads)
        }
    }

    private func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return body()
    }
}
