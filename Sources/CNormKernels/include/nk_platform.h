// The platform's C library for NormKit's Swift code (threads, memory, environment,
// clocks, libm), included once here so no Swift file needs a per-platform import ladder:
// `import CNormKernels` brings these declarations on every platform that has POSIX.
#ifndef NK_PLATFORM_H
#define NK_PLATFORM_H

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/// The last-level cache's size in bytes as the C library reports it (glibc's
/// sysconf(_SC_LEVEL3_CACHE_SIZE): the cache the calling core shares, from CPUID), or 0
/// where it reports none (macOS, musl, a machine without a third level).
static inline long nk_last_level_cache_bytes(void) {
#if defined(_SC_LEVEL3_CACHE_SIZE)
    const long bytes = sysconf(_SC_LEVEL3_CACHE_SIZE);
    return bytes > 0 ? bytes : 0;
#else
    return 0;
#endif
}

#endif
