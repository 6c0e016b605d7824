// The half-precision conversions (kernels/half.h) for the avx512 level: float16
// through AVX-512F's VCVTPH2PS/VCVTPS2PH (round to nearest even), bfloat16 through the
// integer code, or VCVTNEPS2BF16 on CPUs with AVX512_BF16 (half_table.c checks cpuid).
// VCVTNEPS2BF16 flushes float subnormals to zero; lanes holding one take the integer
// result instead, so both tables give the same bits.
#define NK_LEVEL 2
#include "isa/begin.h"
#if NK_ENABLED
#include "kernels/half.h"
NK_HALF_LOOPS(nk_f16_avx512, nk_f16_widen_avx512, nk_f16_narrow_avx512, nk_f16_narrow_store2_avx512)
const nk_half_kernels NK_NAME(nk_half_kernels) = {
    NK_HALF_FORMAT(nk_bf16_int, "integer"),
    NK_HALF_FORMAT(nk_f16_avx512, "AVX-512"),
};
#endif
#include "isa/end.h"

#if NK_ENABLED
#pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512bf16,avx2,fma"))), \
                             apply_to = function)
static inline __attribute__((always_inline)) nk_vh nk_bf16_narrow_native(nk_vf f) {
    const __m512 v = (__m512)f;
    __m256i h = (__m256i)_mm512_cvtneps_pbh(v);
    const __m512i u = _mm512_castps_si512(v);
    // Subnormal lanes: exponent bits all zero, significand not.
    const __mmask16 subnormal = _mm512_testn_epi32_mask(u, _mm512_set1_epi32(0x7f800000)) &
                                _mm512_test_epi32_mask(u, _mm512_set1_epi32(0x007fffff));
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
#define NK_BF16_NATIVE_STORE2(p, f0, f1) NK_NARROW_STORE2(nk_bf16_narrow_native, p, f0, f1)
NK_HALF_LOOPS(nk_bf16_native, nk_bf16_widen_int, nk_bf16_narrow_native, NK_BF16_NATIVE_STORE2)
const nk_half_kernels nk_half_kernels_avx512_bf16 = {
    NK_HALF_FORMAT(nk_bf16_native, "AVX-512 BF16"),
    NK_HALF_FORMAT(nk_f16_avx512, "AVX-512"),
};
#pragma clang attribute pop
#endif
