// NormKit's kernel layer: element-wise loops compiled for several instruction sets
// and chosen at run time (docs/architecture.md, "Kernel layer").
//
// Every kernel family has a table of function pointers per level, got with its
// `..._for(level)` function; the table of a level the CPU (or the OS) does not
// support is NULL, so unsupported code can never be reached.
#ifndef CNORMKERNELS_H
#define CNORMKERNELS_H

#include <stddef.h>
#include <stdint.h>

#pragma clang assume_nonnull begin

/// Instruction-set levels, lowest first.
#define NK_ISA_BASELINE 0  ///< SSE2 on x86-64, NEON on arm64: what every build runs.
#define NK_ISA_AVX2 1      ///< AVX2 + FMA (x86-64 only).
#define NK_ISA_AVX512 2    ///< AVX-512 F/VL/BW/DQ (x86-64 only).

/// The highest level this CPU and OS support: cpuid for the instructions, xgetbv for
/// the register state the OS saves (YMM for AVX2, opmask/ZMM for AVX-512). Computed
/// once; `NK_ISA_BASELINE` off x86-64.
int32_t nk_isa_detected(void);
/// Orders this thread's earlier non-temporal stores (the kernels' `_stream` forms) before
/// its later stores, so a thread that sees a later store (a pool's "rows done") also sees
/// them: an sfence on x86-64, nothing elsewhere (the forms use plain stores there).
void nk_stream_fence(void);

/// 1 when the CPU has AVX512_BF16 (cpuid, read once; 0 off x86-64). The avx512 level's
/// tables then come in a variant that narrows bfloat16 with it, with the same bits.
int32_t nk_cpu_has_avx512bf16(void);
/// 1 when the CPU has F16C (cpuid, read once; 0 off x86-64). The avx2 level's tables then
/// come in a variant that converts float16 with it, with the same bits.
int32_t nk_cpu_has_f16c(void);

/// Σ d and Σ d² of a row's differences d = x - shift, in double.
typedef struct nk_moments {
    double sum;
    double sum_squares;
} nk_moments;

/// The paths of a LayerNorm forward row. Fast: float moments and float affine, both
/// certified. Double moments: the fast moments' certificate failed (or the float affine's
/// did with fast moments), so the moments were taken in Double, and the float affine then
/// certified. Double affine: the float affine's certificate failed on Double moments, so
/// y was computed in Double. Non-finite: a NaN or infinity in the row (y is NaN).
#define NK_LN_PATH_FAST 0
#define NK_LN_PATH_DOUBLE_MOMENTS 1
#define NK_LN_PATH_DOUBLE_AFFINE 2
#define NK_LN_PATH_NONFINITE 3
/// Not a path: a row that forward_row_sampled refused (it then takes one of the four
/// paths about the sdot shift). Counted, so reports can show how often the sample misleads.
#define NK_LN_SAMPLED_REFUSED 4
/// Not a LayerNorm path: an RMSNorm row whose float sum of squares the certificate
/// refused (it then took the Double sum). Counted beside the LayerNorm paths.
#define NK_RMS_DOUBLE_SUMSQ 5
#define NK_LN_COUNTS 6

/// Adds one row to the process-wide count of `path` (relaxed atomic; rows off the fast path only).
void nk_ln_count_path(int32_t path);
/// The process-wide counts of rows per path since the start (index NK_LN_PATH_*,
/// NK_LN_SAMPLED_REFUSED and NK_RMS_DOUBLE_SUMSQ; the fast path's entry stays 0: it is not counted, so callers
/// compare against their rows).
void nk_ln_path_counts(uint64_t counts[_Nonnull NK_LN_COUNTS]);

/// Element formats of the rows a half-precision row kernel reads and writes.
#define NK_ELEM_F32 0
#define NK_ELEM_BF16 1  ///< bfloat16
#define NK_ELEM_F16 2   ///< IEEE binary16

/// The LayerNorm kernels of one level.
typedef struct nk_layernorm_kernels {
    /// Σ (x[i] - shift) and Σ (x[i] - shift)², both in double: every difference and
    /// square is exact or rounded once in double, whatever the row's magnitude (a float
    /// squared can neither overflow nor underflow a double).
    nk_moments (*row_moments)(const float *x, size_t n, float shift);
    /// The fast path's float moments about `shift` (docs/numerics.md, "Blocked float
    /// moments"): Σ (x[i] - shift) and Σ (x[i] - shift)² in float lanes, each term meeting
    /// at most NK_LN_FAST_TERMS - 1 float additions before its partial is added in double. Every fast
    /// form's moments are these, bit for bit; the table has them for the tests of their bound.
    nk_moments (*row_moments_fast)(const float *x, size_t n, float shift);
    /// y = ((x - mean_hi) - mean_lo)·scale·w + b (the mean as the sum of two floats).
    void (*affine)(const float *x, float *y, size_t n, float mean_hi, float mean_lo, float scale,
                   const float *w, const float *b);
    /// One forward row (docs/numerics.md): the moments about `shift` (a float near the
    /// mean, e.g. sdot(x, 1)/n; any finite value is correct, a far one costs a second
    /// pass), the mean and rstd in double, then y. Writes them to stats[0], stats[1].
    /// A row holding NaN or infinity gets y = NaN and NaN statistics. `w_max` and `b_max`
    /// are the largest |w[i]| and |b[i]| (NaN if any is NaN): the output certificate
    /// bounds its error from them and max|y| (docs/numerics.md, "The affine certificate");
    /// values too small make it unsound, so callers compute them from w and b.
    void (*forward_row)(const float *x, float *y, size_t n, float shift, double eps, const float *w,
                        const float *b, float w_max, float b_max, double *stats);
    /// forward_row, returning the path the row took (NK_LN_PATH_*; docs/numerics.md, "The
    /// fast path"). Every row not on the fast path is also counted (nk_ln_path_counts).
    int32_t (*forward_row_path)(const float *x, float *y, size_t n, float shift, double eps, const float *w,
                                const float *b, float w_max, float b_max, double *stats);
    /// The fast path alone, about a shift from a sample of the row instead of a given one
    /// (no read of the row for it: docs/numerics.md, "The shift"). Returns 0 with y and
    /// stats written as forward_row would write them, or 1 when the row is not certified
    /// on it: then stats are untouched, and y too when y == x; else y holds no result
    /// and the caller runs forward_row. A row's outcome depends on the row alone.
    int32_t (*forward_row_sampled)(const float *x, float *y, size_t n, double eps, const float *w, const float *b,
                                   float w_max, float b_max, double *stats);
    /// forward_row_sampled with y written by non-temporal stores where the level has them
    /// (x86), for outputs too big to stay in cache: the same outcome, y and stats. The
    /// caller makes the stores visible to other threads with nk_stream_fence() before it
    /// reports the rows done. y must not be x.
    int32_t (*forward_row_sampled_stream)(const float *x, float *y, size_t n, double eps, const float *w,
                                          const float *b, float w_max, float b_max, double *stats);
    /// forward_row_sampled over `rows` contiguous rows of n floats of x into y, which must
    /// not overlap x: each row's outcome, y and statistics are forward_row_sampled's, but
    /// the output pass of one row runs interleaved with the moments of a later one (the
    /// next, or for rows of up to 2 KB the same place in the next batch of a vector's
    /// lanes of rows; short rows in batches, phase by phase). Writes
    /// mean[r] and rstd[r] (either may be NULL) for each row it certifies and the index of
    /// each row it refuses, in increasing order, to refused[] (room for `rows`); returns
    /// the number refused. A refused row's y holds no result.
    size_t (*forward_rows_sampled)(const float *x, float *y, size_t rows, size_t n, double eps, const float *w,
                                   const float *b, float w_max, float b_max, double *_Nullable mean,
                                   double *_Nullable rstd, size_t *refused);
    /// The fused residual add over `rows` contiguous rows of n floats: sum = x + res (one
    /// float addition per element, every element of every row written, refused or not),
    /// then forward_rows_sampled of the sum into y, the add made as the moments read each
    /// vector. Each row's outcome, y and statistics are forward_row_sampled's on the sum.
    /// sum may be res or x (or both); y must overlap none of x, res and sum, except that y
    /// may be x when sum is not x.
    size_t (*add_forward_rows_sampled)(const float *x, const float *res, float *sum, float *y, size_t rows,
                                       size_t n, double eps, const float *w, const float *b, float w_max,
                                       float b_max, double *_Nullable mean, double *_Nullable rstd,
                                       size_t *refused);
    /// add_forward_rows_sampled, always row by row in the pipelined driver (never in batches
    /// of short rows): the same outcome, bits and sums. For calls from memory, where the
    /// batches' two bursts of stores (the sums, then the outputs) were slower.
    size_t (*add_forward_rows_pipelined)(const float *x, const float *res, float *sum, float *y, size_t rows,
                                         size_t n, double eps, const float *w, const float *b, float w_max,
                                         float b_max, double *_Nullable mean, double *_Nullable rstd,
                                         size_t *refused);
    /// add_forward_rows_sampled on rows of 16-bit elements (`format`: NK_ELEM_BF16 or
    /// NK_ELEM_F16): each sum element is the float sum of the widened operands rounded to
    /// the format (the half table's `add`), and each row's outcome, y and statistics are
    /// forward_row_sampled_half's on the stored sum. The same aliasing rules.
    size_t (*add_forward_rows_sampled_half)(const uint16_t *x, const uint16_t *res, uint16_t *sum, uint16_t *y,
                                            size_t rows, size_t n, int32_t format, double eps, const float *w,
                                            const float *b, float w_max, float b_max, double *_Nullable mean,
                                            double *_Nullable rstd, size_t *refused);
    /// forward_rows_sampled on rows of 16-bit elements (`format`: NK_ELEM_BF16 or NK_ELEM_F16),
    /// converted in registers: each row's outcome, y and statistics are
    /// forward_row_sampled_half's. y must not overlap x.
    size_t (*forward_rows_sampled_half)(const uint16_t *x, uint16_t *y, size_t rows, size_t n, int32_t format,
                                        double eps, const float *w, const float *b, float w_max, float b_max,
                                        double *_Nullable mean, double *_Nullable rstd, size_t *refused);
    /// forward_row_sampled on a row of 16-bit elements (`format`: NK_ELEM_BF16 or
    /// NK_ELEM_F16), widened and narrowed in registers: the same outcome and stats as
    /// forward_row_sampled on the row widened to float, and y that call's y rounded to
    /// the format (round to nearest even). y may be x; otherwise they may not overlap.
    int32_t (*forward_row_sampled_half)(const uint16_t *x, uint16_t *y, size_t n, int32_t format, double eps,
                                        const float *w, const float *b, float w_max, float b_max, double *stats);
    /// Bit NK_ELEM_* set for the formats this level's half row kernels convert cheaply
    /// (bfloat16 always; binary16 with F16C or AVX-512F): the engine uses them for those,
    /// and its float chunks for the others. Both give the same bits.
    int32_t half_in_registers;

    // Backward (Sources/NormKit/Norms/LayerNorm/BackwardKernel.swift has the math and the check).
    // Multiplies and adds round separately (no FMA): the row check's bound assumes it.
    // Σ dy·w and Σ p·w come back in sums[0], sums[1]: float products, added in double.
    // `ahead` (in floats) is how far on x and dy are prefetched.

    /// Fast pass 1: d = (x - mean_hi) - mean_lo and p = d·dy, not stored: only the sums
    /// (Σ dy·w and Σ p·w here in float lanes, as trees over blocks of 8 vectors and chains
    /// of at most 4 for the rest, the block partials added in double). Returns max|d|.
    float (*backward_centre)(const float *x, const float *dy, const float *w, size_t n, float mean_hi,
                             float mean_lo, size_t ahead, double *sums);
    /// Fast pass 2: out = fma(dy·w, rstd, fma(x, beta, gamma)), and the row's share of the
    /// block's partials: pw = fma(((x - mean_hi) - mean_lo)·s, dy, pw), pb += dy (either may be
    /// NULL). Returns max|out|. Prefetches `prefetch` (the output rows ahead) for writing.
    float (*backward_affine)(const float *dy, const float *w, const float *x, float *out, size_t n, float rstd,
                             float beta, float gamma, float mean_hi, float mean_lo, float s, float *_Nullable pw,
                             float *_Nullable pb, const float *prefetch);
    /// backward_affine over two consecutive rows (x, dy and out at +n for the second) into
    /// the same partials, row 1 then row 2 at each vector: the bits of two backward_affine
    /// calls, with each partial read and written once a vector instead of twice. q holds
    /// rstd, beta, gamma, mean_hi, mean_lo, s of row 1, then of row 2; maxima[0], maxima[1]
    /// get each row's max|out|. Prefetches `prefetch` and `prefetch` + n for writing.
    void (*backward_affine2)(const float *dy, const float *w, const float *x, float *out, size_t n, const float *q,
                             float *_Nullable pw, float *_Nullable pb, const float *prefetch, float *maxima);
    /// Careful pass 1: xhat = ((x - mean_hi) - mean_lo)·rstd (xhat may be x), p = dy·xhat.
    /// range[0], range[1] = min and max of x (NaN skipped).
    void (*backward_normalize)(const float *x, const float *dy, const float *w, float *xhat, float *p, size_t n,
                               float mean_hi, float mean_lo, float rstd, size_t ahead, double *sums, float *range);
    /// Careful pass 2: t = (dy·w - a) - xhat·c, dx = t·rstd. Returns max|t|.
    float (*backward_combine)(const float *dy, const float *w, const float *xhat, float *dx, size_t n, float a,
                              float c, float rstd, const float *prefetch);
    /// pw += s·p, pb += dy (either may be NULL): a row's share of dweight and dbias.
    void (*backward_accumulate)(float *_Nullable pw, float *_Nullable pb, const float *p, const float *dy, size_t n,
                                float s);
    /// y = x·s.
    void (*scale)(const float *x, float *y, size_t n, float s);
} nk_layernorm_kernels;

/// The LayerNorm table of `level`, or NULL when this CPU lacks it.
const nk_layernorm_kernels *_Nullable nk_layernorm_kernels_for(int32_t level);
/// The table of `level` without its F16C or AVX512_BF16 variant (tests compare the two).
const nk_layernorm_kernels *_Nullable nk_layernorm_kernels_for_plain(int32_t level);

#pragma clang assume_nonnull end

// Other kernel families (SwiftPM's module for this target is this umbrella header).
#include "nk_rmsnorm.h"
#include "nk_groupnorm.h"
#include "nk_half.h"
#include "nk_platform.h"

#endif
