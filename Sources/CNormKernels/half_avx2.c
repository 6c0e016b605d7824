// The half-precision conversions (kernels/half.h) for the avx2 level: the integer
// code (half_avx2f16c.c has the variant for CPUs with F16C).
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
