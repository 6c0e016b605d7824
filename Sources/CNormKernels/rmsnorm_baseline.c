// The RMSNorm kernels (kernels/rmsnorm.h) for the baseline level.
#define NK_LEVEL 0
#include "isa/begin.h"
#if NK_ENABLED
#include "kernels/rmsnorm.h"
#endif
#include "isa/end.h"
