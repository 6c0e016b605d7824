// Half-precision row conversions, written once; half_<level>.c instantiates them per
// instruction set (isa/begin.h). The integer code here is the definition of every
// conversion's bits; the instruction-set variants (F16C, AVX-512 BF16) in
// half_avx2.c and half_avx512.c give the same bits (tests check every 16-bit pattern
// and float edge cases at every level). docs/numerics.md, "Half-precision elements".
#include "half_convert.h"

// The three row loops of a format from its vector widen and narrow (and a narrowing of
// two vectors stored as one, NK_NARROW_STORE2 below for two narrows): whole vectors,
// then the tail through the same vector code on a padded copy, so an element's bits do
// not depend on where it sits in the row.
#define NK_HALF_LOOPS(prefix, WIDEN, NARROW, NARROW_STORE2)                                     \
    static __attribute__((unused)) void NK_NAME(prefix##_widen)(const uint16_t *x, float *y, size_t n) {               \
        size_t i = 0;                                                                           \
        for (; i + NK_W <= n; i += NK_W) nk_store(y + i, WIDEN(nk_loadh(x + i)));               \
        if (i < n) {                                                                            \
            uint16_t t[NK_W] = {0};                                                             \
            memcpy(t, x + i, (n - i) * sizeof(uint16_t));                                       \
            nk_store_partial(y + i, n - i, WIDEN(nk_loadh(t)));                                 \
        }                                                                                       \
    }                                                                                           \
    static __attribute__((unused)) void NK_NAME(prefix##_narrow)(const float *x, uint16_t *y, size_t n) {              \
        size_t i = 0;                                                                           \
        for (; i + 2 * NK_W <= n; i += 2 * NK_W) NARROW_STORE2(y + i, nk_load(x + i), nk_load(x + i + NK_W)); \
        for (; i + NK_W <= n; i += NK_W) nk_storeh(y + i, NARROW(nk_load(x + i)));              \
        if (i < n) {                                                                            \
            uint16_t t[NK_W];                                                                   \
            nk_storeh(t, NARROW(nk_load_partial(x + i, n - i, 0)));                             \
            memcpy(y + i, t, (n - i) * sizeof(uint16_t));                                       \
        }                                                                                       \
    }                                                                                           \
    NK_INLINE void NK_NAME(prefix##_add_body)(                            \
        const uint16_t *a, const uint16_t *b, uint16_t *sum, float *rounded, size_t n, const int keep) {   \
        size_t i = 0;                                                                           \
        for (; i + NK_W <= n; i += NK_W) {                                                      \
            const nk_vh s = NARROW(WIDEN(nk_loadh(a + i)) + WIDEN(nk_loadh(b + i)));            \
            nk_storeh(sum + i, s);                                                              \
            if (keep) nk_store(rounded + i, WIDEN(s));                                          \
        }                                                                                       \
        if (i < n) {                                                                            \
            uint16_t ta[NK_W] = {0}, tb[NK_W] = {0}, ts[NK_W];                                  \
            memcpy(ta, a + i, (n - i) * sizeof(uint16_t));                                      \
            memcpy(tb, b + i, (n - i) * sizeof(uint16_t));                                      \
            const nk_vh s = NARROW(WIDEN(nk_loadh(ta)) + WIDEN(nk_loadh(tb)));                  \
            nk_storeh(ts, s);                                                                   \
            memcpy(sum + i, ts, (n - i) * sizeof(uint16_t));                                    \
            if (keep) nk_store_partial(rounded + i, n - i, WIDEN(s));                           \
        }                                                                                       \
    }                                                                                           \
    static __attribute__((unused)) void NK_NAME(prefix##_add)(const uint16_t *a, const uint16_t *b, uint16_t *sum, \
                                                              float *rounded, size_t n) {       \
        if (rounded) NK_NAME(prefix##_add_body)(a, b, sum, rounded, n, 1);                     \
        else NK_NAME(prefix##_add_body)(a, b, sum, rounded, n, 0);                             \
    }

NK_HALF_LOOPS(nk_bf16_int, nk_bf16_widen_int, nk_bf16_narrow_int, NK_BF16_INT_NARROW_STORE2)
NK_HALF_LOOPS(nk_f16_int, nk_f16_widen_int, nk_f16_narrow_int, NK_F16_NARROW_STORE2_INT)

#define NK_HALF_FORMAT(prefix, name) \
    { NK_NAME(prefix##_widen), NK_NAME(prefix##_narrow), NK_NAME(prefix##_add), name }
