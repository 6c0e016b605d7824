// The half-precision conversions (kernels/half.h) for the avx2 level: the integer
// code, and float16 through F16C (VCVTPH2PS, VCVTPS2PH with round to nearest even)
// for CPUs that have it (half_table.c checks cpuid).
#define NK_LEVEL 1
#include "isa/begin.h"
#if NK_ENABLED
#include "kernels/half.h"
const nk_half_kernels NK_NAME(nk_half_kernels) = {
    NK_HALF_FORMAT(nk_bf16_int, "integer"),
    NK_HALF_FORMAT(nk_f16_int, "integer"),
};
#endif
#include "isa/end.h"

#if NK_ENABLED
#include <immintrin.h>
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
static inline __attribute__((always_inline)) nk_vf nk_f16_widen_f16c(nk_vh h) {
    __m128i v;
    memcpy(&v, &h, sizeof v);
    return (nk_vf)_mm256_cvtph_ps(v);
}
static inline __attribute__((always_inline)) nk_vh nk_f16_narrow_f16c(nk_vf f) {
    const __m128i v = _mm256_cvtps_ph((__m256)f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    nk_vh h;
    memcpy(&h, &v, sizeof h);
    return h;
}
#define NK_F16C_STORE2(p, f0, f1) NK_NARROW_STORE2(nk_f16_narrow_f16c, p, f0, f1)
NK_HALF_LOOPS(nk_f16_f16c, nk_f16_widen_f16c, nk_f16_narrow_f16c, NK_F16C_STORE2)
const nk_half_kernels nk_half_kernels_avx2_f16c = {
    NK_HALF_FORMAT(nk_bf16_int, "integer"),
    NK_HALF_FORMAT(nk_f16_f16c, "F16C"),
};
#pragma clang attribute pop
#endif
