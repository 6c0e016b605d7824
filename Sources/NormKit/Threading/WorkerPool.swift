// A small persistent pool of helper threads for RowParallel.
//
// Why not Dispatch: `DispatchQueue.concurrentPerform` allocates on every call on Linux,
// and `forward(_:into:)` must not allocate; its sleeping workers are also slow to wake.
// Here helpers spin for a short while after each job (so back-to-back calls, as in a
// model's layers, hand off without a wake-up) and then sleep on a condition variable.
// The measured costs are in docs/performance.md ("How the forward pass is built").
//
// Protocol (all atomics sequentially consistent; correctness over the last nanosecond):
// * One job at a time. A caller takes the pool with `busy` (compare-exchange); a
//   caller that finds it busy (another thread's job, or a nested call from inside a
//   job) runs its parts on its own thread instead. No deadlock, no oversubscription.
//   (A strict call, for tests that must prove a split, waits for the pool instead, and
//   its threads take no second part before each has taken one, each wait bounded; see
//   `run`.)
// * The caller publishes the job (a pointer to a `Job` on its stack), opens `seats`
//   helper seats, bumps `generation` and wakes sleepers. Helpers that see the new
//   generation check in (`active += 1`), re-check that the job is still open, take a
//   seat, and claim parts from `next` until none are left. The caller claims parts too.
// * The caller waits until every part has finished, closes the job (`closed = gen`),
//   and waits until `active == 0` before its stack frame (the job) goes away. A helper
//   that checks in after the close sees `closed == gen` and never touches the job.
// * fork(): a child inherits the pool's memory but none of its helper threads, and may
//   inherit its mutex locked or `active` above 0 (a helper was checked in at the fork).
//   So the pool is only used by the process that created it: in any other (a forked
//   child, `getpid() != owner`), `run` runs every part on the calling thread and touches
//   no lock or counter of the pool.

import CNormKernels  // the C library (include/nk_platform.h)

import Synchronization

@available(macOS 15.0, iOS 18.0, tvOS 18.0, watchOS 11.0, visionOS 2.0, *)
final class WorkerPool: @unchecked Sendable {
    // @unchecked: every shared field is an atomic, or is guarded by `mutex`, or (the job
    // pointer's target) is only read between a helper's check-in and check-out, which
    // the protocol above keeps inside the caller's lifetime of that job.

    /// The process-wide pool; helpers are started on first need and kept.
    static let shared = WorkerPool()

    /// How long an idle helper spins before it sleeps.
    static let spinNanoseconds: UInt64 = 50_000

    /// A part's code: a C function pointer, so a job needs no closure context (a
    /// closure handed to other threads would cost an allocation per call).
    typealias PartFunction = @convention(c) (_ context: UnsafeMutableRawPointer, _ part: Int) -> Void

    /// One parallel call: `function(context, i)` for i in 0..<parts.
    struct Job {
        var parts: Int
        var context: UnsafeMutableRawPointer
        var function: PartFunction
        /// A strict call's thread count, the caller's included (0: not strict): no thread
        /// claims its second part before this many have claimed their first.
        var strictThreads: Int
    }

    private let busy = Atomic<Bool>(false)
    private let generation = Atomic<Int>(0)
    private let closed = Atomic<Int>(0)
    private let active = Atomic<Int>(0)
    private let seats = Atomic<Int>(0)
    private let next = Atomic<Int>(0)
    private let finished = Atomic<Int>(0)
    private let job = Atomic<UnsafeRawPointer?>(nil)
    /// Parts run by helper threads since start: lets tests see that work really was shared.
    let helperParts = Atomic<Int>(0)
    /// Helpers that ran at least one part of the current job (reset per job).
    private let joined = Atomic<Int>(0)
    /// Threads that have claimed a part of the current strict job (reset per job).
    private let claimedFirst = Atomic<Int>(0)
    /// The generation before the job that started the newest helpers (see `ensureHelpers`).
    private let startGeneration = Atomic<Int>(0)

    // Guarded by `mutex`: sleeping helpers and how many helper threads exist.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let wake: UnsafeMutablePointer<pthread_cond_t>
    private var sleepers = 0
    private var helpers = 0

    /// The process that created the pool (and its helpers).
    private let owner = getpid()

    private init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        wake = .allocate(capacity: 1)
        wake.initialize(to: pthread_cond_t())
        pthread_cond_init(wake, nil)
    }

    /// Runs `function(context, 0) ... function(context, parts - 1)`, each exactly once,
    /// on the calling thread and up to `helpers` pool threads; returns when all have
    /// run. Parts are claimed in increasing order. Runs everything on the calling thread,
    /// in order, when the pool is busy or this is a forked child of the pool's process.
    /// Allocates nothing once the helpers exist. Returns how many threads ran at least
    /// one part (the caller's included): 1 when the call ran serially.
    ///
    /// `strict` (tests only, through a `SplitProbe(requiresSplit: true)`): a busy pool is
    /// waited for instead of run around, and no thread claims a second part until each
    /// of the `wanted + 1` (the caller and its helpers) has claimed one, so the call runs
    /// on exactly `wanted + 1` threads.
    /// Both waits give up after `strictPatienceNanoseconds` (a helper that could not be
    /// started, or a strict call nested inside a job) and the call goes on as a plain one.
    @discardableResult
    func run(
        parts: Int, helpers wanted: Int, strict: Bool = false,
        context: UnsafeMutableRawPointer, function: PartFunction
    ) -> Int {
        guard parts > 0 else { return 0 }
        let wanted = min(wanted, parts - 1, Parallelism.maxThreadCount - 1)
        guard wanted > 0, getpid() == owner, acquire(strict: strict) else {
            for i in 0..<parts { function(context, i) }
            return 1
        }
        ensureHelpers(wanted)
        var ran = 0
        var descriptor = Job(parts: parts, context: context, function: function, strictThreads: strict ? wanted + 1 : 0)
        withUnsafePointer(to: &descriptor) { pointer in
            next.store(0, ordering: .sequentiallyConsistent)
            finished.store(0, ordering: .sequentiallyConsistent)
            joined.store(0, ordering: .sequentiallyConsistent)
            claimedFirst.store(0, ordering: .sequentiallyConsistent)
            seats.store(wanted, ordering: .sequentiallyConsistent)
            job.store(UnsafeRawPointer(pointer), ordering: .sequentiallyConsistent)
            let gen = generation.wrappingAdd(1, ordering: .sequentiallyConsistent).newValue
            pthread_mutex_lock(mutex)
            if sleepers > 0 { pthread_cond_broadcast(wake) }
            pthread_mutex_unlock(mutex)

            let mine = work(pointer)
            // Wait for parts claimed by helpers, then for every helper to leave.
            var wait = Backoff()
            while finished.load(ordering: .sequentiallyConsistent) < parts { wait.pause() }
            closed.store(gen, ordering: .sequentiallyConsistent)
            wait = Backoff()
            while active.load(ordering: .sequentiallyConsistent) > 0 { wait.pause() }
            job.store(nil, ordering: .sequentiallyConsistent)
            // Every helper has left (`active == 0`), so `joined` is final.
            ran = joined.load(ordering: .sequentiallyConsistent) + (mine > 0 ? 1 : 0)
        }
        busy.store(false, ordering: .sequentiallyConsistent)
        return ran
    }

    /// Takes the pool (`busy`); a strict caller waits for it, up to its patience.
    private func acquire(strict: Bool) -> Bool {
        if busy.compareExchange(expected: false, desired: true, ordering: .sequentiallyConsistent).exchanged { return true }
        guard strict else { return false }
        let start = monotonicNow()
        while monotonicNow() &- start < Self.strictPatienceNanoseconds {
            usleep(100)
            if busy.compareExchange(expected: false, desired: true, ordering: .sequentiallyConsistent).exchanged { return true }
        }
        return false
    }

    /// Waits (up to the patience) until `count` threads have claimed a part of the job.
    private func waitForFirstClaims(_ count: Int) {
        let start = monotonicNow()
        var wait = Backoff()
        while claimedFirst.load(ordering: .sequentiallyConsistent) < count
                && monotonicNow() &- start < Self.strictPatienceNanoseconds {
            wait.pause()
        }
    }

    /// How long a strict call waits for the pool, and then for its helpers.
    static let strictPatienceNanoseconds: UInt64 = 20_000_000_000

    /// Claims and runs parts of `job` until none are left; returns how many it ran.
    /// In a strict job each thread counts its first claim in `claimedFirst`, and claims
    /// a second only once every thread of the job has claimed a first (parts > threads).
    @discardableResult
    private func work(_ job: UnsafePointer<Job>) -> Int {
        let (parts, context, function) = (job.pointee.parts, job.pointee.context, job.pointee.function)
        var done = 0
        while true {
            if done == 1 && job.pointee.strictThreads > 0 { waitForFirstClaims(job.pointee.strictThreads) }
            let i = next.wrappingAdd(1, ordering: .sequentiallyConsistent).oldValue
            if i >= parts { return done }
            if done == 0 && job.pointee.strictThreads > 0 { claimedFirst.wrappingAdd(1, ordering: .sequentiallyConsistent) }
            done &+= 1
            function(context, i)
            finished.wrappingAdd(1, ordering: .sequentiallyConsistent)
        }
    }

    /// Starts helper threads until there are at least `count`. Called before the job's
    /// generation is bumped: a new helper starts from the generation read here, so it
    /// sees the job it was started for even if its thread only runs after the bump.
    private func ensureHelpers(_ count: Int) {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        guard helpers < count else { return }
        startGeneration.store(generation.load(ordering: .sequentiallyConsistent), ordering: .sequentiallyConsistent)
        while helpers < count {
            helpers += 1
            let context = Unmanaged.passUnretained(self).toOpaque()  // the pool lives forever
            #if canImport(Darwin)
            var thread: pthread_t? = nil
            #else
            var thread = pthread_t()
            #endif
            let status = pthread_create(&thread, nil, { context in
                #if canImport(Darwin)
                let pool = Unmanaged<WorkerPool>.fromOpaque(context).takeUnretainedValue()
                #else
                let pool = Unmanaged<WorkerPool>.fromOpaque(context!).takeUnretainedValue()
                #endif
                pool.helperLoop()
                return nil
            }, context)
            if status != 0 {
                helpers -= 1  // fewer helpers: the caller does more of the work
                return
            }
            pthread_detach(thread)
        }
    }

    /// A helper's life: wait for a new generation, join its job if still open, repeat.
    private func helperLoop() {
        var seen = startGeneration.load(ordering: .sequentiallyConsistent)
        while true {
            seen = waitForNewGeneration(after: seen)
            active.wrappingAdd(1, ordering: .sequentiallyConsistent)
            defer { active.wrappingSubtract(1, ordering: .sequentiallyConsistent) }
            // The job may already be closed (we woke late) or replaced (seen again next time).
            guard closed.load(ordering: .sequentiallyConsistent) != seen,
                  generation.load(ordering: .sequentiallyConsistent) == seen,
                  seats.wrappingSubtract(1, ordering: .sequentiallyConsistent).oldValue > 0,
                  let raw = job.load(ordering: .sequentiallyConsistent)
            else { continue }
            let done = work(raw.assumingMemoryBound(to: Job.self))
            helperParts.wrappingAdd(done, ordering: .relaxed)
            if done > 0 { joined.wrappingAdd(1, ordering: .sequentiallyConsistent) }
        }
    }

    /// Returns the current generation once it differs from `seen`: spins for
    /// `spinNanoseconds`, then sleeps on the condition variable.
    private func waitForNewGeneration(after seen: Int) -> Int {
        let start = monotonicNow()
        var i = 0
        while true {
            let g = generation.load(ordering: .sequentiallyConsistent)
            if g != seen { return g }
            i &+= 1
            if i & 63 == 0 && monotonicNow() &- start > Self.spinNanoseconds { break }
        }
        pthread_mutex_lock(mutex)
        sleepers += 1
        var g = generation.load(ordering: .sequentiallyConsistent)
        while g == seen {
            pthread_cond_wait(wake, mutex)
            g = generation.load(ordering: .sequentiallyConsistent)
        }
        sleepers -= 1
        pthread_mutex_unlock(mutex)
        return g
    }

    /// Waiting for a helper's last part: spin (the wait is at most one part), and only after `spinNanoseconds` yield the core. Yielding at once
    /// is worse on a busy machine: the scheduler may hand the core to another process
    /// for a whole time slice (milliseconds) while the part is long done.
    struct Backoff {
        private var spins = 0
        private var start: UInt64 = 0

        @inline(__always)
        mutating func pause() {
            spins &+= 1
            guard spins & 63 == 0 else { return }
            let now = WorkerPool.monotonicNow()
            if start == 0 {
                start = now
            } else if now &- start > WorkerPool.spinNanoseconds {
                sched_yield()
            }
        }
    }

    fileprivate static func monotonicNow() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    private func monotonicNow() -> UInt64 { Self.monotonicNow() }
}
