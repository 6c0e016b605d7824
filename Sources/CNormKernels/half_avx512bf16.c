// The half-precision conversions (kernels/half.h) for the avx512 level on CPUs with
// AVX512_BF16 (half_table.c checks cpuid): bfloat16 narrowed by VCVTNEPS2BF16 and
// VCVTNE2PS2BF16, float16 as at the avx512 level. The native instructions flush float
// subnormals to zero; lanes holding one take the integer result (kernels/half_convert.h),
// so both tables give the same bits.
#define NK_LEVEL 2
#define NK_AVX512BF16 1
#include "isa/begin.h"
#if NK_ENABLED
#include "kernels/half.h"
NK_HALF_LOOPS(nk_f16_avx512, nk_f16_widen_hw, nk_f16_narrow_hw, NK_F16_NARROW_STORE2)
NK_HALF_LOOPS(nk_bf16_native, nk_bf16_widen_int, nk_bf16_narrow_native, nk_bf16_narrow_store2_native)
const nk_half_kernels NK_NAME(nk_half_kernels) = {
    NK_HALF_FORMAT(nk_bf16_native, "AVX-512 BF16"),
    NK_HALF_FORMAT(nk_f16_avx512, "AVX-512"),
};
#endif
#include "isa/end.h"
