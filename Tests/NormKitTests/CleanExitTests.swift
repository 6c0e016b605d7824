// exit() while other threads are inside forward (docs/reliability.md, "Process exit"):
// the process must exit with the status asked for, not crash in a library's teardown
// (OpenBLAS's destructor freed its buffers under a running sdot: 12 crashes in 30 runs).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NormKit
import Synchronization
import Testing

/// Forward calls finished by the looping thread of `exitFlagParksEveryCaller`.
private let exitLoopCalls = Atomic<Int>(0)
/// The late caller of that test: 1 once it started its call, 2 if the call returned.
private let exitLateCall = Atomic<Int>(0)

/// Starts a detached thread running `body` (a C function: no captures).
private func startThread(_ body: @convention(c) (UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer?) {
    #if canImport(Glibc)
    var thread = pthread_t()
    #else
    var thread: pthread_t?
    #endif
    pthread_create(&thread, nil, body, nil)
}

@Suite("Reliability: process exit", .tags(.reliability))
struct CleanExitTests {
    /// The flag path, deterministically: an atexit handler registered *before* NormKit's
    /// runs after it (handlers run in reverse order) and before OpenBLAS's destructor,
    /// so it sees exactly the state a thread meets during teardown. There a thread that
    /// was calling forward in a loop must have stopped (at most the call in flight
    /// finishes), and a thread that starts a call must park before OpenBLAS, never
    /// return. Without the checkpoint both keep running and the child exits 3 or 4.
    @Test(.tags(.exitTest), .disabled(if: !Self.hasExitFlag, "SKIP: only Linux has the exit flag (Accelerate has no such destructor)"))
    func exitFlagParksEveryCaller() async {
        await #expect(processExitsWith: .exitCode(0)) {
            alarm(30)
            atexit {
                usleep(20_000)  // let a call in flight finish
                let before = exitLoopCalls.load(ordering: .sequentiallyConsistent)
                startThread { _ in
                    exitLateCall.store(1, ordering: .sequentiallyConsistent)
                    _ = try? LayerNorm(dim: 768)(Tensor(shape: [1, 768], repeating: 1))
                    exitLateCall.store(2, ordering: .sequentiallyConsistent)
                    return nil
                }
                // Wait (up to 10 s: a loaded machine may start the thread late) until the
                // late caller has begun, then give it time to return if it could.
                for _ in 0..<1000 where exitLateCall.load(ordering: .sequentiallyConsistent) == 0 { usleep(10_000) }
                usleep(100_000)
                let after = exitLoopCalls.load(ordering: .sequentiallyConsistent)
                let late = exitLateCall.load(ordering: .sequentiallyConsistent)
                let message = Array("exit flag: loop calls \(before) -> \(after), late caller \(late)\n".utf8)
                _ = message.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
                _exit(after - before > 1 ? 3 : late != 1 ? 4 : 0)
            }
            startThread { _ in
                let norm = try! LayerNorm(dim: 768)
                let x = Tensor.randomNormal([1, 768], seed: 3)
                while true {
                    _ = try? norm(x)
                    exitLoopCalls.add(1, ordering: .sequentiallyConsistent)
                }
            }
            while exitLoopCalls.load(ordering: .sequentiallyConsistent) < 100 { usleep(1_000) }
            exit(0)
        }
    }

    #if os(Linux)
    static let hasExitFlag = true
    #else
    static let hasExitFlag = false
    #endif

    /// 60 fresh processes; in each, four threads call forward and backward in a loop
    /// while the main thread calls exit(0) after 2 to 61 ms. Every process must exit
    /// with status 0. Under a sanitizer, 12 of them (every fifth delay, 2 to 57 ms): the
    /// crash this hunts is rare and inside OpenBLAS, which no sanitizer instruments, so
    /// the plain run's 60 hunt it; a sanitizer's report fails any one process (about
    /// 1.2 s each under ThreadSanitizer).
    @Test(.tags(.exitTest), arguments: Sanitizer.any ? Array(stride(from: 0, to: 60, by: 5)) : Array(0..<60))
    func exitWhileForwardRunsOnOtherThreads(run: Int) async {
        await #expect(processExitsWith: .success) { [run = run as Int] in
            alarm(30)
            _ = try LayerNorm(dim: 768)(Tensor.randomNormal([256, 768], seed: 6))  // the pool's helpers run
            for t in 1...4 {
                #if canImport(Glibc)
                var thread = pthread_t()
                #else
                var thread: pthread_t?
                #endif
                pthread_create(&thread, nil, { arg in
                    // Thread 1: forward over a pool-sized input. Threads 2-4: backward of
                    // short rows on one thread, which enters cblas_* every few dozen ns.
                    let big = Int(bitPattern: arg) == 1
                    let norm = try! LayerNorm(dim: big ? 768 : 64)
                    let x = big ? Tensor.randomNormal([256, 768], seed: 6) : Tensor.randomNormal([64, 64], seed: 5)
                    let (_, stats) = try! norm.forwardForTraining(x)
                    while true {
                        if big {
                            _ = try? norm(x)
                        } else {
                            _ = try? Parallelism.withThreadCount(1) {
                                try norm.backward(outputGradient: x, input: x, statistics: stats)
                            }
                        }
                    }
                }, UnsafeMutableRawPointer(bitPattern: t))
            }
            usleep(useconds_t(2_000 + 1_000 * run))
            exit(0)
        }
    }
}
