// Per-thread scratch memory, so a kernel call allocates nothing once a thread has
// made one call of its size.
//
// Each slot is one 64-byte-aligned block per thread, kept across calls and grown when
// a call needs more; the thread's blocks are freed when it exits (a pthread key
// destructor). Slots, because the thread that makes a backward call also runs
// some of its blocks: `call` holds what lives for the whole call (partial sums), `rows`
// what one block needs (a few rows), `half` the float rows a half-precision forward
// widens into (Normalization+Half.swift), apart from what the row functions use.

import CNormKernels  // the C library (include/nk_platform.h)

enum ThreadScratch {
    case call, rows, half

    /// At least `bytes` bytes, 64-byte aligned, owned by this thread until its next
    /// request for the same slot. Contents are undefined.
    func buffer(bytes: Int) -> UnsafeMutableRawPointer {
        let key = switch self {
        case .call: Self.callKey
        case .rows: Self.rowsKey
        case .half: Self.halfKey
        }
        let header = 64
        if let block = pthread_getspecific(key) {
            if block.load(as: Int.self) >= bytes { return block + header }
            free(block)
        }
        var block: UnsafeMutableRawPointer?
        let capacity = max(bytes, 4096)
        guard posix_memalign(&block, 64, header &+ capacity) == 0, let block else {
            preconditionFailure("NormKit: cannot allocate \(capacity) bytes of scratch memory")
        }
        block.storeBytes(of: capacity, as: Int.self)
        pthread_setspecific(key, block)
        return block + header
    }

    private static let callKey = makeKey()
    private static let rowsKey = makeKey()
    private static let halfKey = makeKey()

    private static func makeKey() -> pthread_key_t {
        var key = pthread_key_t()
        let status = pthread_key_create(&key) { block in free(block) }
        precondition(status == 0, "NormKit: pthread_key_create failed (\(status))")
        return key
    }
}
