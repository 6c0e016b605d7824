// The GroupNorm kernels (kernels/groupnorm.h) for the avx512 level.
#define NK_LEVEL 2
#include "isa/begin.h"
#if NK_ENABLED
#include "kernels/groupnorm.h"
#endif
#include "isa/end.h"
