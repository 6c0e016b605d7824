// exit() while other threads are inside NormKit (docs/reliability.md, "Process exit").
//
// Debian's OpenBLAS is built with DYNAMIC_ARCH: every cblas_* call goes through the
// global `gotoblas` kernel table, and OpenBLAS's library destructor (run by exit()
// after the atexit handlers) sets that table to NULL. A thread that enters cblas_sdot
// or cblas_saxpy after that point dereferences NULL: the exiting process dies of
// SIGSEGV instead of exiting with its status.
//
// So NormKit installs an atexit handler (on its first BLAS call; atexit handlers run
// before library destructors) that raises `exiting` and waits a grace period. Every
// BLAS wrapper checks the flag before calling OpenBLAS (one relaxed load); a thread
// that sees it parks (sleeps until the process is gone) instead of entering OpenBLAS.
// A call already inside OpenBLAS finishes within the grace period (a call is at most
// `BLAS.maxChunk` elements, microseconds). Apple platforms use Accelerate, which has no
// such destructor, and skip all of this.

import CNormKernels  // the C library (include/nk_platform.h)

#if os(Linux)
import Synchronization
import Glibc

enum ProcessExit {
    private static let exiting = Atomic<Bool>(false)

    /// How long the handler lets calls already inside OpenBLAS finish.
    static let graceMicroseconds: UInt32 = 10_000

    private static let installed: Bool = {
        atexit {
            ProcessExit.exiting.store(true, ordering: .sequentiallyConsistent)
            usleep(ProcessExit.graceMicroseconds)
        }
        return true
    }()

    /// Call before entering OpenBLAS: returns at once, except after exit() began, when
    /// it never returns (the thread sleeps until the process ends).
    @inline(__always)
    static func checkpoint() {
        _ = installed
        if exiting.load(ordering: .relaxed) { park() }
    }

    private static func park() -> Never {
        while true { pause() }
    }
}
#else
enum ProcessExit {
    @inline(__always)
    static func checkpoint() {}
}
#endif
