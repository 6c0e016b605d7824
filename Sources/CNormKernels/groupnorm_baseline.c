// The GroupNorm kernels (kernels/groupnorm.h) for the baseline level.
#define NK_LEVEL 0
#include "isa/begin.h"
#if NK_ENABLED
#include "kernels/groupnorm.h"
#endif
#include "isa/end.h"
