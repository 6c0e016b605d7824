// The LayerNorm kernels (kernels/layernorm.h) for the baseline level.
#define NK_LEVEL 0
#include "isa/begin.h"
#if NK_ENABLED
#include "kernels/layernorm.h"
#endif
#include "isa/end.h"
