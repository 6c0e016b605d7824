// The half-precision conversions (kernels/half.h) for the baseline level: the integer code.
#define NK_LEVEL 0
#include "isa/begin.h"
#if NK_ENABLED
#include "kernels/half.h"
const nk_half_kernels NK_NAME(nk_half_kernels) = {
    NK_HALF_FORMAT(nk_bf16_int, "integer"),
    NK_HALF_FORMAT(nk_f16_int, "integer"),
};
#endif
#include "isa/end.h"
