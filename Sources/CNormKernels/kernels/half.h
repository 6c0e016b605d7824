// Half-precision row conversions, written once; half_<level>.c instantiates them per
// instruction set (isa/begin.h). The integer code here is the definition of every
// conversion's bits; the instruction-set variants (F16C, AVX-512 BF16) in
// half_avx2.c and half_avx512.c give the same bits (tests check every 16-bit pattern
// and float edge cases at every level). docs/numerics.md, "Half-precision elements".
#include "nk_half.h"

typedef uint32_t nk_vu __attribute__((vector_size(NK_W * 4)));
typedef uint16_t nk_vh __attribute__((vector_size(NK_W * 2)));

static inline __attribute__((always_inline)) nk_vh nk_loadh(const uint16_t *p) {
    nk_vh v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline __attribute__((always_inline)) void nk_storeh(uint16_t *p, nk_vh v) { memcpy(p, &v, sizeof v); }
/// Lane-wise `m ? a : b` for a comparison mask `m` (all ones or zeros per lane).
#define nk_selu(m, a, b) ((((nk_vu)(m)) & (a)) | (~((nk_vu)(m)) & (b)))

/// bfloat16 -> float: the top half of the float's bits. Exact; a NaN gets its quiet bit.
static inline __attribute__((always_inline)) nk_vf nk_bf16_widen_int(nk_vh h) {
    nk_vu u = __builtin_convertvector(h, nk_vu) << 16;
    const nk_vu nan = (nk_vu)((u & 0x7fffffffu) > 0x7f800000u);
    u |= nan & 0x00400000u;
    return (nk_vf)u;
}

/// float -> bfloat16, round to nearest even: add 0x7fff plus the kept part's lowest
/// bit, keep the top half (a carry out of the significand bumps the exponent, and out
/// of the largest finite exponent gives infinity). NaN: the top half with the quiet bit.
static inline __attribute__((always_inline)) nk_vh nk_bf16_narrow_int(nk_vf f) {
    const nk_vu u = (nk_vu)f;
    const nk_vu rounded = (u + (0x7fffu + ((u >> 16) & 1u))) >> 16;
    const nk_vu quiet = (u >> 16) | 0x40u;
    const nk_vu nan = (nk_vu)((u & 0x7fffffffu) > 0x7f800000u);
    return __builtin_convertvector(nk_selu(nan, quiet, rounded), nk_vh);
}

/// binary16 -> float. Normal: re-bias the exponent; subnormal: m·2^-24 (exact in
/// float); infinity and NaN: exponent all ones, a NaN gets its quiet bit.
static inline __attribute__((always_inline)) nk_vf nk_f16_widen_int(nk_vh h) {
    const nk_vu x = __builtin_convertvector(h, nk_vu);
    const nk_vu sign = (x & 0x8000u) << 16;
    const nk_vu em = x & 0x7fffu;
    const nk_vu normal = (em << 13) + ((127u - 15u) << 23);
    const nk_vu special = (em << 13) | 0x7f800000u | ((nk_vu)(em > 0x7c00u) & 0x00400000u);
    const nk_vu sub = (nk_vu)(__builtin_convertvector(em, nk_vf) * 0x1p-24f);
    const nk_vu e = em & 0x7c00u;
    const nk_vu o = nk_selu(e == 0x7c00u, special, nk_selu(e == 0, sub, normal));
    return (nk_vf)(o | sign);
}

/// float -> binary16, round to nearest even. |f| >= 2^16 (and infinity): infinity.
/// Normal range: re-bias, add 0xfff plus the kept part's lowest bit, shift (a carry
/// rounds up to the next binade, or to infinity from 65520 on). Below 2^-14: add 0.5
/// in float, which rounds |f| to a multiple of 2^-24 (to nearest even, the float
/// ulp there), and take the low bits. NaN: quiet, with the top payload bits.
static inline __attribute__((always_inline)) nk_vh nk_f16_narrow_int(nk_vf f) {
    const nk_vu u = (nk_vu)f;
    const nk_vu sign = (u >> 16) & 0x8000u;
    const nk_vu a = u & 0x7fffffffu;
    const nk_vu normal = (a - (112u << 23) + 0xfffu + ((a >> 13) & 1u)) >> 13;
    const nk_vu sub = (nk_vu)((nk_vf)a + 0.5f) - (126u << 23);
    const nk_vu nan = 0x7e00u | ((a >> 13) & 0x3ffu);
    nk_vu o = nk_selu(a < (113u << 23), sub, normal);
    o = nk_selu(a >= 0x47800000u, (nk_vu){} + 0x7c00u, o);
    o = nk_selu(a > 0x7f800000u, nan, o);
    return __builtin_convertvector(o | sign, nk_vh);
}

// The three row loops of a format from its vector widen and narrow: whole vectors,
// then the tail through the same vector code on a padded copy, so an element's bits do
// not depend on where it sits in the row.
#define NK_HALF_LOOPS(prefix, WIDEN, NARROW)                                                    \
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
        for (; i + NK_W <= n; i += NK_W) nk_storeh(y + i, NARROW(nk_load(x + i)));              \
        if (i < n) {                                                                            \
            uint16_t t[NK_W];                                                                   \
            nk_storeh(t, NARROW(nk_load_partial(x + i, n - i, 0)));                             \
            memcpy(y + i, t, (n - i) * sizeof(uint16_t));                                       \
        }                                                                                       \
    }                                                                                           \
    static __attribute__((unused)) void NK_NAME(prefix##_add)(const uint16_t *a, const uint16_t *b, uint16_t *sum, float *rounded, \
                                      size_t n) {                                               \
        size_t i = 0;                                                                           \
        for (; i + NK_W <= n; i += NK_W) {                                                      \
            const nk_vh s = NARROW(WIDEN(nk_loadh(a + i)) + WIDEN(nk_loadh(b + i)));            \
            nk_storeh(sum + i, s);                                                              \
            nk_store(rounded + i, WIDEN(s));                                                    \
        }                                                                                       \
        if (i < n) {                                                                            \
            uint16_t ta[NK_W] = {0}, tb[NK_W] = {0}, ts[NK_W];                                  \
            memcpy(ta, a + i, (n - i) * sizeof(uint16_t));                                      \
            memcpy(tb, b + i, (n - i) * sizeof(uint16_t));                                      \
            const nk_vh s = NARROW(WIDEN(nk_loadh(ta)) + WIDEN(nk_loadh(tb)));                  \
            nk_storeh(ts, s);                                                                   \
            memcpy(sum + i, ts, (n - i) * sizeof(uint16_t));                                    \
            nk_store_partial(rounded + i, n - i, WIDEN(s));                                     \
        }                                                                                       \
    }

NK_HALF_LOOPS(nk_bf16_int, nk_bf16_widen_int, nk_bf16_narrow_int)
NK_HALF_LOOPS(nk_f16_int, nk_f16_widen_int, nk_f16_narrow_int)

#define NK_HALF_FORMAT(prefix, name) \
    { NK_NAME(prefix##_widen), NK_NAME(prefix##_narrow), NK_NAME(prefix##_add), name }
