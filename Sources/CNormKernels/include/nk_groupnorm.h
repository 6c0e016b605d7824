// The GroupNorm kernels (kernels/groupnorm.h), per instruction set.
#ifndef NK_GROUPNORM_H
#define NK_GROUPNORM_H

#include "CNormKernels.h"

#pragma clang assume_nonnull begin

/// The GroupNorm kernels of one level, over one row: `channels` runs of `spatial`
/// floats, channel c scaled by w[c] and shifted by b[c]. The row's statistics come
/// from the LayerNorm family's `row_moments`.
typedef struct nk_groupnorm_kernels {
    /// y = ((x - mean_hi) - mean_lo)·scale·w[c] + b[c] per channel c, rounded as the
    /// LayerNorm `affine` (one FMA where the level has it). y may be x.
    void (*affine)(const float *x, float *y, size_t channels, size_t spatial, float mean_hi, float mean_lo,
                   float scale, const float *w, const float *b);
    /// With x̂ = (x - mean)·rstd and g = dy·w[c], all in double: sums[0] = Σ g and
    /// sums[1] = Σ g·x̂ over the row, and per channel pw[c] += Σ dy·x̂, pb[c] += Σ dy
    /// (either may be NULL).
    void (*backward_sums)(const float *x, const float *dy, size_t channels, size_t spatial, double mean,
                          double rstd, const float *w, double *sums, double *_Nullable pw, double *_Nullable pb);
    /// dx = rstd·(g - a - x̂·c) in double, rounded once (then added in float to dx when
    /// `accumulate`).
    void (*backward_dx)(const float *x, const float *dy, float *dx, size_t channels, size_t spatial, double mean,
                        double rstd, const float *w, double a, double c, int32_t accumulate);
} nk_groupnorm_kernels;

/// The GroupNorm table of `level`, or NULL when this CPU lacks it.
const nk_groupnorm_kernels *_Nullable nk_groupnorm_kernels_for(int32_t level);

#pragma clang assume_nonnull end

#endif
