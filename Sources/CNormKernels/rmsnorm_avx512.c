// The RMSNorm kernels (kernels/rmsnorm.h) for the avx512 level.
#define NK_LEVEL 2
#include "isa/begin.h"
#if NK_ENABLED
#include "kernels/rmsnorm.h"
#endif
#include "isa/end.h"
