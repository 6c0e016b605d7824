// nk_groupnorm_kernels_for(level): the GroupNorm table of a level.
#include "isa/table.h"
#include "nk_groupnorm.h"

NK_TABLE_GETTER(nk_groupnorm_kernels, nk_groupnorm_kernels_for)
