// Half-precision vector conversions, written once for every level (isa/begin.h gives
// NK_W, nk_vf): bfloat16 and IEEE binary16 to and from float, lane by lane. The
// integer code is the definition of every conversion's bits; where a level has an
// instruction that gives the same bits (VCVTPH2PS/VCVTPS2PH for binary16 with AVX-512F,
// or F16C in the avx2 level's variant), NK_F16_WIDEN/NK_F16_NARROW use it. The row loops (half.h) and the half-precision row
// kernels (layernorm.h) read and write through these. docs/numerics.md, "Half-precision
// elements".
#ifndef NK_HALF_CONVERT_H
#define NK_HALF_CONVERT_H
#include "nk_half.h"

#if NK_LEVEL >= 1 && defined(__x86_64__)
#include <immintrin.h>
#endif

typedef uint32_t nk_vu __attribute__((vector_size(NK_W * 4)));
typedef uint16_t nk_vh __attribute__((vector_size(NK_W * 2)));

NK_INLINE nk_vh nk_loadh(const uint16_t *p) {
    nk_vh v;
    memcpy(&v, p, sizeof v);
    return v;
}
NK_INLINE void nk_storeh(uint16_t *p, nk_vh v) { memcpy(p, &v, sizeof v); }
/// The first k (< NK_W) 16-bit values at p in a vector, the other lanes zero. At the
/// AVX-512 level a masked load: a copy through a buffer is a vector load over a shorter
/// store, which the CPU cannot forward (a stall on every row with a tail).
NK_INLINE nk_vh nk_loadh_partial(const uint16_t *p, size_t k) {
#if NK_LEVEL == 2
    const __m256i h = _mm256_maskz_loadu_epi16((__mmask16)((1u << k) - 1), p);
    nk_vh v;
    memcpy(&v, &h, sizeof v);
    return v;
#else
    uint16_t t[NK_W] = {0};
    memcpy(t, p, k * sizeof(uint16_t));
    return nk_loadh(t);
#endif
}
/// Stores the first k (< NK_W) lanes of v at p; nothing else is written.
NK_INLINE void nk_storeh_partial(uint16_t *p, size_t k, nk_vh v) {
#if NK_LEVEL == 2
    __m256i h;
    memcpy(&h, &v, sizeof h);
    _mm256_mask_storeu_epi16(p, (__mmask16)((1u << k) - 1), h);
#else
    uint16_t t[NK_W];
    nk_storeh(t, v);
    memcpy(p, t, k * sizeof(uint16_t));
#endif
}
/// Lane-wise `m ? a : b` for a comparison mask `m` (all ones or zeros per lane).
#define nk_selu(m, a, b) ((((nk_vu)(m)) & (a)) | (~((nk_vu)(m)) & (b)))

/// bfloat16 -> float: the top half of the float's bits. Exact; a NaN gets its quiet bit.
NK_INLINE nk_vf nk_bf16_widen_int(nk_vh h) {
    nk_vu u = __builtin_convertvector(h, nk_vu) << 16;
    const nk_vu nan = (nk_vu)((u & 0x7fffffffu) > 0x7f800000u);
    u |= nan & 0x00400000u;
    return (nk_vf)u;
}

/// bfloat16 -> float as bits alone: exact for every value, and a NaN stays a NaN (with
/// its quiet bit as it came), for kernels that only test a NaN for being one.
NK_INLINE nk_vf nk_bf16_widen_bits(nk_vh h) {
    return (nk_vf)(__builtin_convertvector(h, nk_vu) << 16);
}

/// nk_bf16_widen_bits of one value.
NK_INLINE float nk_bf16_scalar_bits(uint16_t h) {
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/// float -> bfloat16, round to nearest even: add 0x7fff plus the kept part's lowest
/// bit, keep the top half (a carry out of the significand bumps the exponent, and out
/// of the largest finite exponent gives infinity). NaN: the top half with the quiet bit.
NK_INLINE nk_vh nk_bf16_narrow_int(nk_vf f) {
    const nk_vu u = (nk_vu)f;
    const nk_vu rounded = (u + (0x7fffu + ((u >> 16) & 1u))) >> 16;
    const nk_vu quiet = (u >> 16) | 0x40u;
    const nk_vu nan = (nk_vu)((u & 0x7fffffffu) > 0x7f800000u);
    return __builtin_convertvector(nk_selu(nan, quiet, rounded), nk_vh);
}

/// binary16 -> float. Normal: re-bias the exponent; subnormal: m·2^-24 (exact in
/// float); infinity and NaN: exponent all ones, a NaN gets its quiet bit.
NK_INLINE nk_vf nk_f16_widen_int(nk_vh h) {
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
NK_INLINE nk_vh nk_f16_narrow_int(nk_vf f) {
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

#if NK_LEVEL == 2 || (NK_LEVEL == 1 && defined(NK_F16C))
// binary16 by VCVTPH2PS/VCVTPS2PH (round to nearest even): AVX-512F at the avx512 level,
// F16C in the avx2 level's variant for CPUs with it. The integer code's bits.
#include <immintrin.h>
#if NK_LEVEL == 2
typedef __m256i nk_ph_bits;  // NK_W binary16 values
typedef __m512 nk_ps_reg;    // NK_W floats
#define NK_CVTPH_PS _mm512_cvtph_ps
#define NK_CVTPS_PH _mm512_cvtps_ph
#else
typedef __m128i nk_ph_bits;
typedef __m256 nk_ps_reg;
#define NK_CVTPH_PS _mm256_cvtph_ps
#define NK_CVTPS_PH _mm256_cvtps_ph
#endif
/// binary16 -> float (exact, NaN quietened).
NK_INLINE nk_vf nk_f16_widen_hw(nk_vh h) {
    nk_ph_bits v;
    memcpy(&v, &h, sizeof v);
    return (nk_vf)NK_CVTPH_PS(v);
}
/// float -> binary16, round to nearest even.
NK_INLINE nk_vh nk_f16_narrow_hw(nk_vf f) {
    const nk_ph_bits v = NK_CVTPS_PH((nk_ps_reg)f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    nk_vh h;
    memcpy(&h, &v, sizeof h);
    return h;
}
#define NK_F16_WIDEN nk_f16_widen_hw
#define NK_F16_NARROW nk_f16_narrow_hw
#define NK_F16_NATIVE 1
#else
#define NK_F16_WIDEN nk_f16_widen_int
#define NK_F16_NARROW nk_f16_narrow_int
#define NK_F16_NATIVE 0
#endif

#if NK_LEVEL == 2
/// VPERMW's index that puts word j of its source in the top half of 32-bit lane j (word
/// 2j + 1); under the zeroing mask 0xaaaaaaaa the even words are zero: 16 bfloat16 values
/// widened to floats in one shuffle (add 16 to every index for the source's words 16..31).
NK_INLINE __m512i nk_bf16_spread_index(void) {
    return _mm512_set_epi16(15, 15, 14, 14, 13, 13, 12, 12, 11, 11, 10, 10, 9, 9, 8, 8, 7, 7, 6, 6, 5, 5, 4, 4, 3,
                            3, 2, 2, 1, 1, 0, 0);
}
/// Two vectors narrowed to bfloat16 with nk_bf16_narrow_int's bits, stored as one: the
/// rounding in 32-bit lanes, then one two-source word permute takes every high half.
NK_INLINE void nk_bf16_narrow_store2_avx512(uint16_t *p, nk_vf f0, nk_vf f1) {
    const __m512i idx = _mm512_set_epi16(63, 61, 59, 57, 55, 53, 51, 49, 47, 45, 43, 41, 39, 37, 35, 33, 31, 29, 27,
                                         25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    nk_vu r[2];
    const nk_vf f[2] = {f0, f1};
    for (int j = 0; j < 2; j++) {
        const nk_vu u = (nk_vu)f[j];
        const nk_vu rounded = u + (0x7fffu + ((u >> 16) & 1u));
        const nk_vu quiet = u | 0x00400000u;
        const nk_vu nan = (nk_vu)((u & 0x7fffffffu) > 0x7f800000u);
        r[j] = nk_selu(nan, quiet, rounded);
    }
    __m512i a, b;
    memcpy(&a, &r[0], sizeof a);
    memcpy(&b, &r[1], sizeof b);
    const __m512i h = _mm512_permutex2var_epi16(a, idx, b);
    memcpy(p, &h, sizeof h);
}
/// Two vectors narrowed to binary16, stored as one.
NK_INLINE void nk_f16_narrow_store2_hw(uint16_t *p, nk_vf f0, nk_vf f1) {
    const __m256i a = _mm512_cvtps_ph((__m512)f0, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256i b = _mm512_cvtps_ph((__m512)f1, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512i h = _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
    memcpy(p, &h, sizeof h);
}
#define NK_BF16_INT_NARROW_STORE2 nk_bf16_narrow_store2_avx512
#define NK_F16_NARROW_STORE2 nk_f16_narrow_store2_hw
#if defined(NK_AVX512BF16)
/// float -> bfloat16 by VCVTNEPS2BF16 (round to nearest even; a NaN gets the integer
/// code's quiet NaN). It flushes float subnormals to zero, so lanes holding one take
/// the integer result: the integer code's bits in every lane.
NK_INLINE nk_vh nk_bf16_narrow_native(nk_vf f) {
    const __m512 v = (__m512)f;
    __m256i h = (__m256i)_mm512_cvtneps_pbh(v);
    const __mmask16 subnormal = _mm512_fpclass_ps_mask(v, 0x20);
    if (subnormal) {
        nk_vh exact = nk_bf16_narrow_int(f);
        __m256i e;
        memcpy(&e, &exact, sizeof e);
        h = _mm256_mask_blend_epi16(subnormal, h, e);
    }
    nk_vh out;
    memcpy(&out, &h, sizeof out);
    return out;
}
/// Two vectors by one VCVTNE2PS2BF16, stored as one; a pair holding a float subnormal
/// takes the integer code (nk_bf16_narrow_store2_avx512).
NK_INLINE void nk_bf16_narrow_store2_native(uint16_t *p, nk_vf f0, nk_vf f1) {
    if (_mm512_fpclass_ps_mask((__m512)f0, 0x20) | _mm512_fpclass_ps_mask((__m512)f1, 0x20)) {
        nk_bf16_narrow_store2_avx512(p, f0, f1);
        return;
    }
    const __m512bh h = _mm512_cvtne2ps_pbh((__m512)f1, (__m512)f0);  // f0 in the low half
    memcpy(p, &h, sizeof h);
}
#define NK_BF16_NARROW_STORE2 nk_bf16_narrow_store2_native
#define NK_BF16_NARROW nk_bf16_narrow_native
/// Two vectors narrowed to bfloat16 and stored as one (nk_bf16_narrow_store2_native's
/// bits), and the stored values widened back into *w0 and *w1 from the register, as
/// nk_bf16_load_bits would read them from p: no load of a just-stored line (a 64-byte store
/// does not forward to the 32-byte loads that would read it back).
NK_INLINE void nk_bf16_narrow_store2_widen(uint16_t *p, nk_vf f0, nk_vf f1, nk_vf *w0, nk_vf *w1) {
    __m512i h;
    if (_mm512_fpclass_ps_mask((__m512)f0, 0x20) | _mm512_fpclass_ps_mask((__m512)f1, 0x20)) {
        nk_bf16_narrow_store2_avx512(p, f0, f1);
        memcpy(&h, p, sizeof h);
    } else {
        const __m512bh n = _mm512_cvtne2ps_pbh((__m512)f1, (__m512)f0);  // f0 in the low half
        memcpy(&h, &n, sizeof h);
        memcpy(p, &h, sizeof h);
    }
    const __m512i lo = nk_bf16_spread_index(), hi = _mm512_add_epi16(lo, _mm512_set1_epi16(16));
    const __m512i a = _mm512_maskz_permutexvar_epi16(0xaaaaaaaau, lo, h);
    const __m512i b = _mm512_maskz_permutexvar_epi16(0xaaaaaaaau, hi, h);
    memcpy(w0, &a, sizeof a);
    memcpy(w1, &b, sizeof b);
}
#define NK_BF16_NARROW_STORE2_WIDEN 1
/// VCVTNEPS2BF16 alone, and VCVTNE2PS2BF16 for two vectors stored as one: the integer
/// code's bits in every lane that does not hold a float subnormal (those become a zero of
/// their sign). For callers that check for subnormals themselves, once per row, instead of
/// once per vector (nk_elem_store_flush).
NK_INLINE void nk_bf16_store_flush(uint16_t *p, nk_vf f) {
    const __m256bh h = _mm512_cvtneps_pbh((__m512)f);
    memcpy(p, &h, sizeof h);
}
NK_INLINE void nk_bf16_store2_flush(uint16_t *p, nk_vf f0, nk_vf f1) {
    const __m512bh h = _mm512_cvtne2ps_pbh((__m512)f1, (__m512)f0);  // f0 in the low half
    memcpy(p, &h, sizeof h);
}
#define NK_BF16_FLUSHES 1
#else
#define NK_BF16_NARROW_STORE2 nk_bf16_narrow_store2_avx512
#endif
#else
#define NK_BF16_INT_NARROW_STORE2(p, f0, f1) NK_NARROW_STORE2(nk_bf16_narrow_int, p, f0, f1)
#define NK_BF16_NARROW_STORE2 NK_BF16_INT_NARROW_STORE2
#define NK_F16_NARROW_STORE2(p, f0, f1) NK_NARROW_STORE2(NK_F16_NARROW, p, f0, f1)
#endif
/// Two vectors through NARROW, stored one after the other.
#define NK_NARROW_STORE2(NARROW, p, f0, f1) (nk_storeh((p), NARROW(f0)), nk_storeh((p) + NK_W, NARROW(f1)))
/// The integer binary16 narrowing, two vectors at a time.
#define NK_F16_NARROW_STORE2_INT(p, f0, f1) NK_NARROW_STORE2(nk_f16_narrow_int, p, f0, f1)
#define NK_BF16_WIDEN nk_bf16_widen_int
#ifndef NK_BF16_NARROW
#define NK_BF16_NARROW nk_bf16_narrow_int
#endif

/// The formats whose rows the row kernels of this level read and write in registers at
/// least as fast as the float chunks they replace (bit NK_ELEM_*): bfloat16 always (a
/// shift to widen); binary16 where an instruction converts it (F16C, AVX-512F). The
/// integer binary16 conversion costs about a dozen operations a vector each way, which
/// the row kernels would pay in every pass: there the engine keeps the float chunks
/// (measured: 1.55-1.62x slower in registers at the baseline level).
#define NK_HALF_IN_REGISTERS ((1 << NK_ELEM_BF16) | (NK_F16_NATIVE << NK_ELEM_F16))

// Row access by element format (NK_ELEM_F32, NK_ELEM_BF16, NK_ELEM_F16; `fmt` a constant
// at every call, so the choice folds away): the row kernels written over a format
// (layernorm.h, rmsnorm.h) load and store through these.

/// Bytes per element of format `fmt`.
#define NK_ELEM_SIZE(fmt) ((size_t)((fmt) == NK_ELEM_F32 ? 4 : 2))

/// NK_W bfloat16 values at p, widened as nk_bf16_widen_bits widens them (the same bits),
/// in one shuffle where the level has one that puts each 16-bit word in the top half of
/// its 32-bit lane and zeroes the rest: AVX-512BW's VPERMW under a zeroing mask; AVX2's
/// VPSHUFB on the 8 values broadcast to both 128-bit halves. Elsewhere a zero-extension
/// and a shift (two operations, the first across 128-bit halves).
NK_INLINE nk_vf nk_bf16_load_bits(const uint16_t *p) {
#if NK_LEVEL == 2
    const __m512i idx = nk_bf16_spread_index();
    __m256i h;
    memcpy(&h, p, sizeof h);
    const __m512i v = _mm512_maskz_permutexvar_epi16(0xaaaaaaaau, idx, _mm512_castsi256_si512(h));
    nk_vf f;
    memcpy(&f, &v, sizeof f);
    return f;
#elif NK_LEVEL == 1 && defined(__x86_64__)
    // Bytes 2j, 2j + 1 of the 16 loaded into the top half of lane j (j = 0..3 in the low
    // half, 4..7 in the high half, each half holding all 16 bytes); 0x80 zeroes a byte.
    const __m256i idx = _mm256_setr_epi8(-128, -128, 0, 1, -128, -128, 2, 3, -128, -128, 4, 5, -128, -128, 6, 7,
                                         -128, -128, 8, 9, -128, -128, 10, 11, -128, -128, 12, 13, -128, -128, 14, 15);
    __m128i h;
    memcpy(&h, p, sizeof h);
    const __m256i v = _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(h), idx);
    nk_vf f;
    memcpy(&f, &v, sizeof f);
    return f;
#else
    return nk_bf16_widen_bits(nk_loadh(p));
#endif
}

/// NK_W elements i ..< i + NK_W of a row of format `fmt`, as floats.
NK_INLINE nk_vf nk_elem_load(const void *p, size_t i, const int fmt) {
    if (fmt == NK_ELEM_F32) return nk_load((const float *)p + i);
    // bfloat16 without the quiet bit: a row kernel only tests a NaN for being one.
    if (fmt == NK_ELEM_BF16) return nk_bf16_load_bits((const uint16_t *)p + i);
    return NK_F16_WIDEN(nk_loadh((const uint16_t *)p + i));
}
/// NK_W 16-bit values of format `fmt` (bfloat16 or binary16) already in a register,
/// widened as nk_elem_load widens them from memory (the same bits).
NK_INLINE nk_vf nk_elem_widen(nk_vh h, const int fmt) {
    return fmt == NK_ELEM_BF16 ? nk_bf16_widen_bits(h) : NK_F16_WIDEN(h);
}
/// The k < NK_W elements from i on, the other lanes `fill`.
NK_INLINE nk_vf nk_elem_load_partial(const void *p, size_t i, size_t k, float fill,
                                     const int fmt) {
    if (fmt == NK_ELEM_F32) return nk_load_partial((const float *)p + i, k, fill);
    const nk_vh h = nk_loadh_partial((const uint16_t *)p + i, k);
    const nk_vf v = fmt == NK_ELEM_BF16 ? NK_BF16_WIDEN(h) : NK_F16_WIDEN(h);
    nk_vu lane;
    for (size_t j = 0; j < NK_W; j++) lane[j] = (uint32_t)j;
    return (nk_vf)nk_selu(lane < (uint32_t)k, (nk_vu)v, (nk_vu)nk_splat(fill));
}
/// v rounded to the 16-bit format `fmt` (bfloat16 or binary16), as nk_elem_store stores it.
NK_INLINE nk_vh nk_elem_narrow(nk_vf v, const int fmt) {
    return fmt == NK_ELEM_BF16 ? NK_BF16_NARROW(v) : NK_F16_NARROW(v);
}
/// Stores v, rounded to `fmt`, at elements i ..< i + NK_W.
NK_INLINE void nk_elem_store(void *p, size_t i, nk_vf v, const int fmt) {
    if (fmt == NK_ELEM_F32) nk_store((float *)p + i, v);
    else nk_storeh((uint16_t *)p + i, nk_elem_narrow(v, fmt));
}
/// Stores v0, v1, rounded to `fmt`, at elements i ..< i + 2·NK_W.
NK_INLINE void nk_elem_store2(void *p, size_t i, nk_vf v0, nk_vf v1, const int fmt) {
    if (fmt == NK_ELEM_F32) {
        nk_store((float *)p + i, v0);
        nk_store((float *)p + i + NK_W, v1);
    } else if (fmt == NK_ELEM_BF16) {
        NK_BF16_NARROW_STORE2((uint16_t *)p + i, v0, v1);
    } else {
        NK_F16_NARROW_STORE2((uint16_t *)p + i, v0, v1);
    }
}
#ifndef NK_BF16_FLUSHES
#define NK_BF16_FLUSHES 0
#endif
#ifndef NK_BF16_NARROW_STORE2_WIDEN
/// Whether nk_bf16_narrow_store2_widen exists (AVX512_BF16); elsewhere a no-op that no
/// caller reaches.
#define NK_BF16_NARROW_STORE2_WIDEN 0
#define nk_bf16_narrow_store2_widen(p, f0, f1, w0, w1) ((void)(p), (void)(f0), (void)(f1), (void)(w0), (void)(w1))
#endif
/// Whether nk_elem_store_flush and nk_elem_store2_flush differ from nk_elem_store and
/// nk_elem_store2 for `fmt` (a constant): bfloat16 where the level narrows it by
/// VCVTNEPS2BF16.
#define NK_ELEM_STORE_FLUSHES(fmt) (NK_BF16_FLUSHES && (fmt) == NK_ELEM_BF16)
/// nk_elem_store, except that where NK_ELEM_STORE_FLUSHES(fmt) a lane holding a float
/// subnormal may be stored as a zero: the caller must find such lanes (a |v| below 2^-126)
/// and store them again through nk_elem_store.
NK_INLINE void nk_elem_store_flush(void *p, size_t i, nk_vf v, const int fmt) {
#if NK_BF16_FLUSHES
    if (fmt == NK_ELEM_BF16) {
        nk_bf16_store_flush((uint16_t *)p + i, v);
        return;
    }
#endif
    nk_elem_store(p, i, v, fmt);
}
/// nk_elem_store2 as nk_elem_store_flush is nk_elem_store.
NK_INLINE void nk_elem_store2_flush(void *p, size_t i, nk_vf v0, nk_vf v1,
                                    const int fmt) {
#if NK_BF16_FLUSHES
    if (fmt == NK_ELEM_BF16) {
        nk_bf16_store2_flush((uint16_t *)p + i, v0, v1);
        return;
    }
#endif
    nk_elem_store2(p, i, v0, v1, fmt);
}
/// Stores the first k < NK_W lanes of v, rounded to `fmt`, from element i on.
NK_INLINE void nk_elem_store_partial(void *p, size_t i, size_t k, nk_vf v,
                                     const int fmt) {
    if (fmt == NK_ELEM_F32) {
        nk_store_partial((float *)p + i, k, v);
        return;
    }
    nk_storeh_partial((uint16_t *)p + i, k, nk_elem_narrow(v, fmt));
}

#endif
