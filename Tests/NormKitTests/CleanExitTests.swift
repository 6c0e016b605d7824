// exit() while other threads are inside forward (docs/reliability.md, "Process exit"):
// the process must exit with the status asked for, not crash in a library's teardown
// (OpenBLAS's destructor freed its buffers under a running sdot: 12 crashes in 30 runs).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NormKit
import Testing

@Suite("Reliability: process exit", .tags(.reliability))
struct CleanExitTests {
    /// 60 fresh processes; in each, four threads call forward and backward in a loop
    /// while the main thread calls exit(0) after 2 to 61 ms. Every process must exit
    /// with status 0.
    @Test(.tags(.exitTest), arguments: 0..<60)
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
