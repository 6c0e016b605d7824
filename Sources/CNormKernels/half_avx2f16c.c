// The half-precision conversions (kernels/half.h) for the avx2 level on CPUs with F16C
// (half_table.c checks cpuid): float16 through VCVTPH2PS and VCVTPS2PH (round to nearest
// even; the integer code's bits), bfloat16 through the integer code.
#define NK_LEVEL 1
#define NK_F16C 1
#include "isa/begin.h"
#if NK_ENABLED
#include "kernels/half.h"
NK_HALF_LOOPS(nk_f16_f16c, nk_f16_widen_hw, nk_f16_narrow_hw, NK_F16_NARROW_STORE2)
const nk_half_kernels NK_NAME(nk_half_kernels) = {
    NK_HALF_FORMAT(nk_bf16_int, "integer"),
    NK_HALF_FORMAT(nk_f16_f16c, "F16C"),
};
#endif
#include "isa/end.h"
