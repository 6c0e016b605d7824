// The RMSNorm and fused residual-add kernels (kernels/rmsnorm.h), per instruction set.
#ifndef NK_RMSNORM_H
#define NK_RMSNORM_H

#include "CNormKernels.h"

#pragma clang assume_nonnull begin

/// The certificate of `row_sumsq_f`'s sum `s` of a row of `n` elements
/// (docs/numerics.md, "The float sum of squares"): finite (no square or partial
/// overflowed; not NaN) and at least n·2^-120, so that the squares and sums that fell
/// below float's normal range (each off by at most 2^-150) move it by at most 2^-30 of
/// itself. A zero row is refused (its Double sum is 0 as well). The one definition, for
/// the Swift row step (RMSKernel) and the half row kernel alike.
static inline int32_t nk_rms_sum_certified(double s, size_t n) {
    return s < __builtin_inf() && s >= (double)n * 0x1p-120;
}

/// The RMSNorm kernels of one level. Every output may be the very same memory as an
/// input (each element is read before it is written, at its own index); no other
/// overlap is allowed.
typedef struct nk_rmsnorm_kernels {
    /// Σ x[i]² in double (a float squared is exact in double, and no sum of them can
    /// overflow or underflow it).
    double (*row_sumsq)(const float *x, size_t n);
    /// sum[i] = a[i] + b[i] (the float sum), and returns Σ sum[i]² exactly as
    /// `row_sumsq(sum, n)` would (same lanes, same order): one pass for the fused add.
    double (*add_row_sumsq)(const float *a, const float *b, float *sum, size_t n);
    /// Σ x[i]² with the squares and their sums in float within blocks of
    /// NK_RMS_FAST_TERMS terms per lane, the block partials added in double: within
    /// about 4·2^-24 of the exact sum (docs/numerics.md), unless a square overflowed
    /// (the result is then infinite) or the sum is small enough for float underflow to
    /// matter (the caller's certificate refuses both). NaN in, NaN out.
    double (*row_sumsq_f)(const float *x, size_t n);
    /// sum[i] = a[i] + b[i] (the float sum), and returns `row_sumsq_f(sum, n)`'s value
    /// (same lanes, same order): one pass for the fused add.
    double (*add_row_sumsq_f)(const float *a, const float *b, float *sum, size_t n);
    /// sum[i] = a[i] + b[i] (the float sum), for the fused LayerNorm.
    void (*add)(const float *a, const float *b, float *sum, size_t n);
    /// y[i] = (x[i]·r)·(offset + w[i]), in float.
    void (*scale)(const float *x, float *y, size_t n, float r, const float *w, float offset);
    /// A row of 16-bit elements (`format`: NK_ELEM_BF16 or NK_ELEM_F16) converted in
    /// registers: its float sum of squares (`row_sumsq_f` of the widened row), RMSKernel's
    /// certificate, r = 1/sqrt(Σ/n + eps) in double, and `scale` with Float(r), narrowed
    /// once. Returns 0 with y written, or 1 (nothing written) when the sum is not
    /// certified. y may be x; otherwise they may not overlap.
    int32_t (*forward_row_half)(const uint16_t *x, uint16_t *y, size_t n, int32_t format, double eps, const float *w,
                                float offset);
    /// RMSKernel's forward over `rows` rows of n floats at once, pipelined (row r's sum of
    /// squares beside row r-1's output pass): each row's bits are those of `row_sumsq_f`,
    /// `nk_rms_sum_certified`, r = 1/sqrt(Σ/n + eps) in double and `scale` with Float(r).
    /// A row whose sum is refused is not written and is listed in `refused` (at most
    /// `rows` indices, increasing); returns how many. y may be x; else no overlap. With
    /// `rrms`, each certified row's 1/rms from its Double sum (`row_sumsq`), as RMSKernel
    /// keeps it for backward, goes to rrms[row]; refused rows' are not written.
    size_t (*forward_rows)(const float *x, float *y, size_t rows, size_t n, double eps, const float *w, float offset,
                           double *_Nullable rrms, size_t *refused);
    /// forward_rows on sum = x + res (the float sum, stored for every row as
    /// `add_row_sumsq_f` stores it, refused rows too), y from the sums. sum may be x or
    /// res, y any of the three; no other overlap.
    size_t (*add_forward_rows)(const float *x, const float *res, float *sum, float *y, size_t rows, size_t n,
                               double eps, const float *w, float offset, double *_Nullable rrms, size_t *refused);
    /// forward_rows on rows of 16-bit elements (`format`: NK_ELEM_BF16 or NK_ELEM_F16),
    /// converted in registers: each row's outcome and bits are `forward_row_half`'s.
    size_t (*forward_rows_half)(const uint16_t *x, uint16_t *y, size_t rows, size_t n, int32_t format, double eps,
                                const float *w, float offset, size_t *refused);
    /// As nk_layernorm_kernels.half_in_registers.
    int32_t half_in_registers;
    /// Σ dy[i]·(offset + w[i])·x[i] in double.
    double (*backward_dot)(const float *x, const float *dy, const float *w, float offset, size_t n);
    /// dx[i] = r·dy[i]·(offset + w[i]) - x[i]·k in double, rounded once (and added in
    /// float to dx[i] when `accumulate`); partial[i] += dy[i]·x[i]·r in double.
    void (*backward_row)(const float *x, const float *dy, float *dx, size_t n, const float *w, float offset,
                         double r, double k, int32_t accumulate, double *partial);
    /// With g[i] = dy[i]·(offset + w[i]) in double: out[0] = Σ g·x, out[1] = Σ |g·x|,
    /// out[2] = max|g|, out[3] = max|x| (NaN skipped by the maxima, not by the sums).
    void (*backward_sums)(const float *x, const float *dy, const float *w, float offset, size_t n, double *out);
    /// out[i] = r·dy[i]·(offset + w[i]) - x[i]·k in double, rounded once to float;
    /// partial[i] += dy[i]·x[i]·r in double (unless partial is NULL). Returns max|out[i]|
    /// before the rounding.
    double (*backward_grad)(const float *x, const float *dy, float *out, size_t n, const float *w, float offset,
                            double r, double k, double *_Nullable partial);
    /// The float fast pass's sums, as backward_sums but in float: g = dy·(offset + w) and
    /// g·x rounded in float, Σ g·x and Σ |g·x| in float within blocks of 4 vectors per
    /// lane, the block partials added in double; out[2], out[3] = max|g|, max|x| (floats).
    void (*backward_sums_f)(const float *x, const float *dy, const float *w, float offset, size_t n, double *out);
    /// out[i] = (dy[i]·(offset + w[i]))·r - x[i]·k in float; partial[i] += (x[i]·r)·dy[i]
    /// (the float product, added in double). Returns max|out[i]|.
    float (*backward_grad_f)(const float *x, const float *dy, float *out, size_t n, const float *w, float offset,
                             float r, float k, double *partial);
} nk_rmsnorm_kernels;

/// The RMSNorm table of `level`, or NULL when this CPU lacks it.
const nk_rmsnorm_kernels *_Nullable nk_rmsnorm_kernels_for(int32_t level);
/// The table of `level` without its F16C or AVX512_BF16 variant (tests compare the two).
const nk_rmsnorm_kernels *_Nullable nk_rmsnorm_kernels_for_plain(int32_t level);

#pragma clang assume_nonnull end

#endif
