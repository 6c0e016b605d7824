// nk_rmsnorm_kernels_for(level): the RMSNorm table of a level.
#include "isa/table.h"
#include "nk_rmsnorm.h"

NK_TABLE_GETTER_EXT(nk_rmsnorm_kernels, nk_rmsnorm_kernels_for)
