// nk_half_kernels_for(level): the half-precision table of a level, with the
// instruction-set variant of a format when the CPU has its extension.
#include "isa/table.h"
#include "nk_half.h"

#if defined(__x86_64__)
#include <cpuid.h>

extern const nk_half_kernels nk_half_kernels_baseline, nk_half_kernels_avx2, nk_half_kernels_avx512,
    nk_half_kernels_avx2f16c, nk_half_kernels_avx512bf16;

/// CPUID.1:ECX.F16C[bit 29].
static int nk_has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && ((c >> 29) & 1);
}

/// CPUID.(EAX=7,ECX=1):EAX.AVX512_BF16[bit 5]. Only asked at the AVX-512 level, whose
/// register state dispatch.c has already checked.
static int nk_has_avx512bf16(void) {
    unsigned a, b, c, d;
    if (__get_cpuid_max(0, 0) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    if (a < 1) return 0;  // EAX of leaf 7, subleaf 0: the highest subleaf
    __cpuid_count(7, 1, a, b, c, d);
    return (a >> 5) & 1;
}

/// Bit 0: F16C, bit 1: AVX512_BF16; computed once (cpuid can cost microseconds in a
/// virtual machine, and the table is looked up per call). Threads racing at start-up
/// all compute the same value.
static int nk_half_features(void) {
    static int cached = -1;
    int features = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (features < 0) {
        features = nk_has_f16c() | (nk_has_avx512bf16() << 1);
        __atomic_store_n(&cached, features, __ATOMIC_RELAXED);
    }
    return features;
}

int32_t nk_cpu_has_avx512bf16(void) { return (nk_half_features() & 2) != 0; }
int32_t nk_cpu_has_f16c(void) { return (nk_half_features() & 1) != 0; }

const nk_half_kernels *nk_half_kernels_for(int32_t level) {
    if (level < 0 || level > nk_isa_detected()) return NULL;
    const int features = nk_half_features();
    switch (level) {
    case NK_ISA_AVX512: return (features & 2) ? &nk_half_kernels_avx512bf16 : &nk_half_kernels_avx512;
    case NK_ISA_AVX2: return (features & 1) ? &nk_half_kernels_avx2f16c : &nk_half_kernels_avx2;
    default: return &nk_half_kernels_baseline;
    }
}
#else
int32_t nk_cpu_has_avx512bf16(void) { return 0; }
int32_t nk_cpu_has_f16c(void) { return 0; }
NK_TABLE_GETTER(nk_half_kernels, nk_half_kernels_for)
#endif
