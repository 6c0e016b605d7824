// nk_layernorm_kernels_for(level): the LayerNorm table of a level.
#include "isa/table.h"

NK_TABLE_GETTER_EXT(nk_layernorm_kernels, nk_layernorm_kernels_for)

static uint64_t nk_ln_paths[NK_LN_COUNTS];

void nk_ln_count_path(int32_t path) {
    if (path >= 0 && path < NK_LN_COUNTS) __atomic_fetch_add(&nk_ln_paths[path], 1, __ATOMIC_RELAXED);
}

void nk_ln_path_counts(uint64_t counts[NK_LN_COUNTS]) {
    for (int i = 0; i < NK_LN_COUNTS; i++) counts[i] = __atomic_load_n(&nk_ln_paths[i], __ATOMIC_RELAXED);
}
