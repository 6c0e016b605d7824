// One LayerNorm, many tasks and threads at once: the results must be bitwise the
// results of serial use. These tests are the ones `.ci/run` leans on under
// `--sanitize=thread`: TSan sees every access, whether or not two threads happened
// to overlap in time on this 2-core machine.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NormKit
import Testing

/// Inputs that take every kernel path: random rows of every family, NaN and
/// infinity rows, several ranks, odd dims, an empty batch.
struct ConcurrencyFixture: Sendable {
    var norm: LayerNorm
    var inputs: [Tensor]
    var serial: [Tensor]

    static func make(dim: Int, seed: UInt64) throws -> ConcurrencyFixture {
        var g = RowGenerator(seed: seed)
        var norm = try LayerNorm(dim: dim)
        norm.weight = try Tensor(shape: [dim], scalars: g.weight(dim: dim))
        norm.bias = try Tensor(shape: [dim], scalars: g.bias(dim: dim))
        var inputs: [Tensor] = []
        for rows in [1, 3, 8, 17] {
            var scalars: [Float] = []
            for _ in 0..<rows {
                scalars += g.rng.unit() < 0.15 ? g.nonFiniteRow(dim: dim) : g.row(g.family(), dim: dim)
            }
            inputs.append(try Tensor(shape: [rows, dim], scalars: scalars))
        }
        inputs.append(try Tensor.randomNormal([2, 5, dim], seed: seed).reshaped(to: [2, 5, dim]))
        inputs.append(Tensor.zeros([0, dim]))
        let serial = try inputs.map { try norm($0) }
        return ConcurrencyFixture(norm: norm, inputs: inputs, serial: serial)
    }
}

/// Runs `body(i)` on `count` OS threads started together and joins them all.
/// More threads than cores, so the scheduler interleaves them preemptively. With
/// `stackBytes`, each thread gets a stack of that size (else the system's default).
func runOnThreads(_ count: Int, stackBytes: Int? = nil, _ body: @escaping @Sendable (Int) -> Void) {
    final class Box: @unchecked Sendable {  // handed to exactly one thread
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }
    #if canImport(Glibc)
    var threads: [pthread_t] = []
    #else
    var threads: [pthread_t?] = []
    #endif
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    defer { pthread_attr_destroy(&attributes) }
    if let stackBytes { precondition(pthread_attr_setstacksize(&attributes, stackBytes) == 0) }
    for i in 0..<count {
        let box = Unmanaged.passRetained(Box { body(i) }).toOpaque()
        #if canImport(Glibc)
        var thread = pthread_t()
        #else
        var thread: pthread_t?
        #endif
        let rc = pthread_create(&thread, &attributes, { arg in
            Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue().run()
            return nil
        }, box)
        precondition(rc == 0, "pthread_create failed: \(rc)")
        threads.append(thread)
    }
    #if canImport(Glibc)
    for t in threads { pthread_join(t, nil) }
    #else
    for t in threads { pthread_join(t!, nil) }
    #endif
}

/// One slot per thread, written by that thread only and read after the join
/// (pthread_join orders the writes before the reads). The slots are separate memory
/// locations behind a raw pointer: assigning through an Array property would be a
/// modifying access to the whole array from every thread, a real race (TSan says so).
final class PerThreadSlots<T>: @unchecked Sendable {
    private let slots: UnsafeMutableBufferPointer<T>
    init(count: Int, initial: T) {
        slots = .allocate(capacity: count)
        slots.initialize(repeating: initial)
    }
    deinit {
        slots.baseAddress!.deinitialize(count: slots.count)
        slots.deallocate()
    }
    func set(_ i: Int, _ value: T) { slots[i] = value }
    var values: [T] { Array(slots) }
}

@Suite("Concurrency", .tags(.concurrency))
struct ConcurrencyTests {
    /// One LayerNorm value shared by 64 tasks, each normalising one of the fixture's
    /// inputs several times: every result is bitwise the serial one.
    @Test(arguments: [17, 768])
    func oneLayerNormFromManyTasksMatchesSerialBitwise(dim: Int) async throws {
        let f = try ConcurrencyFixture.make(dim: dim, seed: UInt64(dim))
        let results = try await withThrowingTaskGroup(of: (Int, [Tensor]).self) { group in
            for task in 0..<64 {
                group.addTask {
                    let i = task % f.inputs.count
                    return (i, try (0..<4).map { _ in try f.norm(f.inputs[i]) })
                }
            }
            var all: [(Int, [Tensor])] = []
            for try await r in group { all.append(r) }
            return all
        }
        #expect(results.count == 64)
        for (i, outputs) in results {
            for y in outputs {
                #expect(y.shape == f.serial[i].shape)
                #expect(bitwiseMismatch(y.scalars, f.serial[i].scalars) == nil, "input \(i), dim \(dim)")
            }
        }
    }

    /// `forward(_:into:)` from many tasks, each with its own output buffer that it
    /// reuses: bitwise the serial results, and no task sees another's output.
    @Test func forwardIntoFromManyTasks() async throws {
        let f = try ConcurrencyFixture.make(dim: 33, seed: 3)
        let mismatches = try await withThrowingTaskGroup(of: Int.self) { group in
            for task in 0..<32 {
                group.addTask {
                    var bad = 0
                    for round in 0..<8 {
                        let i = (task + round) % f.inputs.count
                        var out = Tensor(shape: f.inputs[i].shape, repeating: .nan)
                        try f.norm.forward(f.inputs[i], into: &out)
                        if !bitwiseEqual(out.scalars, f.serial[i].scalars) { bad += 1 }
                    }
                    return bad
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(mismatches == 0)
    }

    /// Eight OS threads (four per core) hammer one LayerNorm and one set of input
    /// tensors, including the error path (a wrong-shape input throws on every thread).
    @Test func manyThreadsShareOneLayerNormAndItsInputs() throws {
        let f = try ConcurrencyFixture.make(dim: 100, seed: 11)
        let threads = 8, rounds = 25
        let mismatches = PerThreadSlots(count: threads, initial: -1)
        runOnThreads(threads) { t in
            var bad = 0
            for round in 0..<rounds {
                let i = (t + round) % f.inputs.count
                do {
                    let y = try f.norm(f.inputs[i])
                    if !bitwiseEqual(y.scalars, f.serial[i].scalars) { bad += 1 }
                    _ = try f.norm(Tensor.zeros([2, 99]))
                    bad += 1  // must have thrown
                } catch {
                    if error as? NormKitError != .inputShapeMismatch(expectedLastDimension: 100, actual: [2, 99]) { bad += 1 }
                }
            }
            mismatches.set(t, bad)
        }
        #expect(mismatches.values == Array(repeating: 0, count: threads))
    }

    /// Copies of one tensor and one layer, mutated on different threads at once:
    /// copy-on-write gives each thread its own storage and leaves the shared
    /// original untouched.
    @Test func copiesMutatedConcurrentlyStayIndependent() throws {
        let f = try ConcurrencyFixture.make(dim: 64, seed: 5)
        let shared = f.inputs[2]
        let original = shared.scalars
        let threads = 8
        let ok = PerThreadSlots(count: threads, initial: false)
        runOnThreads(threads) { t in
            var mine = shared
            mine.withUnsafeMutableBufferPointer { $0[t] = Float(t) * 1000 }
            var norm = f.norm
            norm.bias = Tensor(shape: [64], repeating: Float(t))
            let y = try? norm(mine)
            var expectedNorm = f.norm
            expectedNorm.bias = Tensor(shape: [64], repeating: Float(t))
            let expected = try? expectedNorm(mine)
            ok.set(t, mine.scalars[t] == Float(t) * 1000 && y != nil && expected != nil
                      && bitwiseEqual(y!.scalars, expected!.scalars)
                      && bitwiseEqual(shared.scalars, original))
        }
        #expect(ok.values == Array(repeating: true, count: threads))
        #expect(bitwiseMismatch(shared.scalars, original) == nil)
    }

    /// The first forward call in a process initialises shared state (the BLAS ones
    /// vector, OpenBLAS itself). Doing that first call from eight threads at once, in a
    /// fresh child process, must be race-free and give the serial results; under
    /// `--sanitize=thread` a race report fails the child.
    @Test(.tags(.exitTest))
    func firstUseFromManyThreadsInAFreshProcess() async {
        await #expect(processExitsWith: .success) {
            // Nothing here touches BLAS before the threads start: building a layer and
            // a tensor does not.
            let norm = try LayerNorm(dim: 4099)
            let x = Tensor.randomNormal([3, 4099], seed: 2)
            let threads = 8
            let outputs = PerThreadSlots<Tensor?>(count: threads, initial: nil)
            runOnThreads(threads) { t in outputs.set(t, try? norm(x)) }
            let serial = try norm(x)
            for y in outputs.values {
                guard let y, bitwiseEqual(y.scalars, serial.scalars) else { exit(1) }
            }
        }
    }
}
