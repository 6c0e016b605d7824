// The RMSNorm kernels (kernels/rmsnorm.h) for the avx2 level on CPUs with F16C: the same
// code, whose float16 rows convert with VCVTPH2PS/VCVTPS2PH (kernels/half_convert.h; the
// integer code's bits). isa/table.h chooses it by cpuid.
#define NK_LEVEL 1
#define NK_F16C 1
#include "isa/begin.h"
#if NK_ENABLED
#include "kernels/rmsnorm.h"
#endif
#include "isa/end.h"
