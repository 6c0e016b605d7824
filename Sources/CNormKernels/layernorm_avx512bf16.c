// The LayerNorm kernels (kernels/layernorm.h) for the avx512 level on CPUs with AVX512_BF16:
// the same code, whose bfloat16 rows narrow by VCVTNE2PS2BF16 (kernels/half_convert.h;
// the integer code's bits). isa/table.h chooses it by cpuid.
#define NK_LEVEL 2
#define NK_AVX512BF16 1
#include "isa/begin.h"
#if NK_ENABLED
#include "kernels/layernorm.h"
#endif
#include "isa/end.h"
