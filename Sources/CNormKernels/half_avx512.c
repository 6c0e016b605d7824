// The half-precision conversions (kernels/half.h) for the avx512 level: float16
// through AVX-512F's VCVTPH2PS/VCVTPS2PH (round to nearest even), bfloat16 through the
// integer code (half_avx512bf16.c has the variant for CPUs with AVX512_BF16).
#define NK_LEVEL 2
#include "isa/begin.h"
#if NK_ENABLED
#include "kernels/half.h"
NK_HALF_LOOPS(nk_f16_avx512, nk_f16_widen_hw, nk_f16_narrow_hw, NK_F16_NARROW_STORE2)
const nk_half_kernels NK_NAME(nk_half_kernels) = {
    NK_HALF_FORMAT(nk_bf16_int, "integer"),
    NK_HALF_FORMAT(nk_f16_avx512, "AVX-512"),
};
#endif
#include "isa/end.h"
