// NK_TABLE_GETTER(type, getter): defines `const type *getter(int32_t level)`, which
// returns the table `type_baseline`, `type_avx2` or `type_avx512` (each defined by the
// per-ISA files, at the end of the body: `const type NK_NAME(type) = { ... };`), or
// NULL for a level this CPU lacks.
#include "CNormKernels.h"

#if defined(__x86_64__)
#define NK_TABLE_GETTER(type, getter)                                   \
    extern const type type##_baseline, type##_avx2, type##_avx512;      \
    const type *getter(int32_t level) {                                 \
        if (level < 0 || level > nk_isa_detected()) return NULL;        \
        switch (level) {                                                \
        case NK_ISA_AVX512: return &type##_avx512;                      \
        case NK_ISA_AVX2: return &type##_avx2;                          \
        default: return &type##_baseline;                               \
        }                                                               \
    }
/// NK_TABLE_GETTER_EXT(type, getter): the same, but the variants `type_avx2f16c` (compiled
/// with NK_F16C) at the avx2 level when the CPU has F16C, and `type_avx512bf16` (compiled
/// with NK_AVX512BF16) at the avx512 level when it has AVX512_BF16; and
/// `getter##_plain(level)`, the tables without the variants (for tests comparing them).
#define NK_TABLE_GETTER_EXT(type, getter)                               \
    NK_TABLE_GETTER(type, getter##_plain)                               \
    extern const type type##_avx2f16c, type##_avx512bf16;               \
    const type *getter(int32_t level) {                                 \
        if (level == NK_ISA_AVX512 && level <= nk_isa_detected() && nk_cpu_has_avx512bf16()) \
            return &type##_avx512bf16;                                  \
        if (level == NK_ISA_AVX2 && level <= nk_isa_detected() && nk_cpu_has_f16c()) \
            return &type##_avx2f16c;                                    \
        return getter##_plain(level);                                   \
    }
#else
#define NK_TABLE_GETTER_EXT(type, getter) NK_TABLE_GETTER(type, getter##_plain) NK_TABLE_GETTER(type, getter)
#define NK_TABLE_GETTER(type, getter)                                   \
    extern const type type##_baseline;                                  \
    const type *getter(int32_t level) {                                 \
        return level == NK_ISA_BASELINE ? &type##_baseline : NULL;      \
    }
#endif
