#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The CLI's one clock: CLOCK_MONOTONIC, read directly (one vDSO call, no allocation),
/// so timing a call of a few microseconds does not time the clock.
@inlinable
package func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// Seconds taken by `body`, from the monotonic clock.
@inlinable
package func seconds<E: Error>(_ body: () throws(E) -> Void) throws(E) -> Double {
    let start = monotonicNanoseconds()
    try body()
    return Double(monotonicNanoseconds() &- start) * 1e-9
}
