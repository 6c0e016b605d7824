// Which instruction sets this CPU and OS support (see CNormKernels.h).
#include "CNormKernels.h"

#if defined(__x86_64__)
#include <cpuid.h>

/// XCR0, the register state the OS saves on a context switch. Only valid when
/// cpuid reports OSXSAVE.
static uint64_t nk_xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static int32_t nk_detect(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return NK_ISA_BASELINE;
    const int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    if (!osxsave || !avx || !fma) return NK_ISA_BASELINE;
    const uint64_t xcr0 = nk_xgetbv0();
    if ((xcr0 & 0x6) != 0x6) return NK_ISA_BASELINE;  // XMM and YMM state
    if (__get_cpuid_max(0, 0) < 7) return NK_ISA_BASELINE;
    __cpuid_count(7, 0, a, b, c, d);
    if (!((b >> 5) & 1)) return NK_ISA_BASELINE;  // AVX2
    const int f = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
    // Opmask, upper halves of ZMM0-15, ZMM16-31 (bits 5-7), beside XMM/YMM.
    if (f && dq && bw && vl && (xcr0 & 0xe6) == 0xe6) return NK_ISA_AVX512;
    return NK_ISA_AVX2;
}

int32_t nk_isa_detected(void) {
    // Computed at most a few times if threads race at start-up; every result is the same.
    static int32_t cached = -1;
    int32_t level = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (level < 0) {
        level = nk_detect();
        __atomic_store_n(&cached, level, __ATOMIC_RELAXED);
    }
    return level;
}
#else
int32_t nk_isa_detected(void) { return NK_ISA_BASELINE; }
#endif

void nk_stream_fence(void) {
#if defined(__x86_64__)
    __builtin_ia32_sfence();
#endif
}
