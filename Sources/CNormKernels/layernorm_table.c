// nk_layernorm_kernels_for(level): the LayerNorm table of a level.
#include "isa/table.h"

NK_TABLE_GETTER(nk_layernorm_kernels, nk_layernorm_kernels_for)
