// One LayerNorm forward row at the AVX-512 level, timed alone: the kernel layer's
// forward_row_sampled over ROWS rows of 768 floats (U[-2, 2), bench's affine w ~ N(1, 0.2),
// b ~ N(0, 0.1)), repeated REPS times, 15 timings; prints the median and the fastest, in ns
// per row, and how many rows the sampled path refused (a refused row's time here is
// only its refusal). ROWS = 4 keeps everything in L1 (the kernel's own cost); 1024 is bench's
// [1,1024,768]. Build and run from the repository root:
//
//   S=Sources/CNormKernels; clang -O2 -I$S -I$S/include scripts/time-forward-row.c -lm -o /tmp/time-row
//   /tmp/time-row 4 30000; /tmp/time-row 1024 100
//
// A third argument `bf16` times the bfloat16 row kernel (forward_row_sampled_half) on the
// same values rounded to bfloat16; build with -DNK_AVX512BF16 for the AVX512_BF16 variant
// (VCVTNE2PS2BF16 narrowing; the CPU must have it), without it for the integer narrowing.
// A third argument `pipelined` times forward_rows_sampled over the ROWS rows at once (each
// row's output pass interleaved with the next row's moments, or for short rows the batched
// body), per row; `pipelined-bf16` the same over the bfloat16 rows. `f16` and `pipelined-f16`
// time the binary16 rows (VCVTPH2PS/VCVTPS2PH at this level). `add` times the fused residual
// add (add_forward_rows_sampled: h += x in place in a stream of U[-2, 2) rows, then y = LN(h));
// `add-bf16` the same in bfloat16 (add_forward_rows_sampled_half). The environment variable N sets the row length (default 768):
// `N=128 /tmp/time-row 256 2000 pipelined`.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define NK_LEVEL 2
#include "isa/begin.h"
#include "kernels/layernorm.h"
#include "isa/end.h"

void nk_ln_count_path(int32_t path) { (void)path; }

static uint64_t state = 88172645463325252ull;
static double uniform(void) {
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    return (double)(state >> 11) * 0x1p-53;
}
static double normal(void) { return sqrt(-2 * log(uniform() + 1e-300)) * cos(2 * M_PI * uniform()); }
/// f rounded to bfloat16, to nearest even (finite values).
static uint16_t bf16_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
#include "timing.h"

int main(int argc, char **argv) {
    if (!__builtin_cpu_supports("avx512f")) { fprintf(stderr, "this CPU has no AVX-512\n"); return 1; }
    const size_t n = getenv("N") ? (size_t)atoi(getenv("N")) : 768, rows = argc > 1 ? (size_t)atoi(argv[1]) : 4;
    const int reps = argc > 2 ? atoi(argv[2]) : 30000;
    const int f16 = argc > 3 && (strcmp(argv[3], "f16") == 0 || strcmp(argv[3], "pipelined-f16") == 0);
    const int add_half = argc > 3 && strcmp(argv[3], "add-bf16") == 0;
    const int half = f16 || add_half || (argc > 3 && (strcmp(argv[3], "bf16") == 0 || strcmp(argv[3], "pipelined-bf16") == 0));
    const int fmt = f16 ? NK_ELEM_F16 : NK_ELEM_BF16;
    const int pipelined = argc > 3 && strncmp(argv[3], "pipelined", 9) == 0;
    const int add = add_half || (argc > 3 && strcmp(argv[3], "add") == 0);
    size_t *refused_rows = malloc(rows * sizeof *refused_rows);
    float *x = malloc(n * rows * sizeof *x), *y = malloc(n * rows * sizeof *y), *w = malloc(n * sizeof *w),
          *b = malloc(n * sizeof *b);
    for (size_t i = 0; i < n; i++) w[i] = (float)(1 + 0.2 * normal()), b[i] = (float)(0.1 * normal());
    for (size_t i = 0; i < n * rows; i++) x[i] = (float)(-2 + 4 * uniform());
    float *r_stream = malloc(n * rows * sizeof *r_stream);
    for (size_t i = 0; i < n * rows; i++) r_stream[i] = (float)(-2 + 4 * uniform());
    uint16_t *xh = malloc(n * rows * sizeof *xh), *yh = malloc(n * rows * sizeof *yh), *rh = malloc(n * rows * sizeof *rh);
    for (size_t i = 0; i < n * rows; i++) {
        rh[i] = bf16_bits(r_stream[i]);
        xh[i] = bf16_bits(x[i]);
        if (f16) {
            const _Float16 h = (_Float16)x[i];
            memcpy(&xh[i], &h, sizeof h);
        }
    }
    float w_max = 0, b_max = 0;
    for (size_t i = 0; i < n; i++) w_max = fmaxf(w_max, fabsf(w[i])), b_max = fmaxf(b_max, fabsf(b[i]));
    size_t refused = 0;
    double stats[2], times[15];
#define ROW(r)                                                                                                 \
    (half ? NK_NAME(nk_ln_forward_row_sampled_half)(xh + (r) * n, yh + (r) * n, n, fmt, 1e-5, w, b, w_max, \
                                                    b_max, stats)                                              \
          : NK_NAME(nk_ln_forward_row_sampled)(x + (r) * n, y + (r) * n, n, 1e-5, w, b, w_max, b_max, stats))
    for (size_t row = 0; row < rows; row++) refused += ROW(row) != 0;
    for (int t = 0; t < 15; t++) {
        const double start = now();
        for (int r = 0; r < reps; r++) {
            if (add_half) {
                (void)NK_NAME(nk_ln_add_forward_rows_sampled_half)(xh, rh, rh, yh, rows, n, NK_ELEM_BF16, 1e-5, w, b,
                                                                   w_max, b_max, NULL, NULL, refused_rows);
                continue;
            }
            if (add) {
                // h = x + r, in place in the stream r (which grows by x each call; far from
                // overflow in the repetitions timed).
                (void)NK_NAME(nk_ln_add_forward_rows_sampled)(x, r_stream, r_stream, y, rows, n, 1e-5, w, b, w_max, b_max,
                                                              NULL, NULL, refused_rows);
                continue;
            }
            if (pipelined && half) {
                (void)NK_NAME(nk_ln_forward_rows_sampled_half)(xh, yh, rows, n, fmt, 1e-5, w, b, w_max, b_max,
                                                               NULL, NULL, refused_rows);
                continue;
            }
            if (pipelined) {
                (void)NK_NAME(nk_ln_forward_rows_sampled)(x, y, rows, n, 1e-5, w, b, w_max, b_max, NULL, NULL,
                                                          refused_rows);
                continue;
            }
            for (size_t row = 0; row < rows; row++)
                (void)ROW(row);
        }
        times[t] = (now() - start) / ((double)reps * (double)rows) * 1e9;
    }
    qsort(times, 15, sizeof times[0], ascending);
    printf("%.1f ns/row median, %.1f fastest (%zu rows of %zu%s, %zu refused)\n", times[7], times[0], rows, n,
           add_half ? " bf16, fused add" : add ? ", fused add" : half && pipelined ? (f16 ? " f16, pipelined" : " bf16, pipelined") : half ? (f16 ? " f16" : " bf16") : pipelined ? ", pipelined" : "", refused);
    return 0;
}
