// The GroupNorm kernels (kernels/groupnorm.h) for the avx2 level.
#define NK_LEVEL 1
#include "isa/begin.h"
#if NK_ENABLED
#include "kernels/groupnorm.h"
#endif
#include "isa/end.h"
