// RMSNorm's forward over ROWS rows of N floats at the AVX-512 level, two ways, timed in
// one run: "two passes" (row_sumsq_f, then r and scale, row by row: RMSKernel's loop
// before the pipelined kernels) and "pipelined" (forward_rows in chunks of 128 rows, as
// RMSKernel calls it). With a fourth argument `add`, the fused add instead
// (add_row_sumsq_f then scale, against add_forward_rows; the stream in place, growing by
// x each repetition). x is
// U[-2, 2), w = 1. Prints the median and fastest of 9 timings, in ns per row. Build and
// run from the repository root:
//
//   S=Sources/CNormKernels; clang -O2 -I$S -I$S/include scripts/time-rms-rows.c -lm -o /tmp/time-rms
//   /tmp/time-rms 768 1024 50       # in cache ([1,1024,768])
//   /tmp/time-rms 768 8192 5        # from memory ([8,1024,768])
//   /tmp/time-rms 768 1024 30 add
//
// docs/performance.md, "RMSNorm rows pipelined", has the results.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define NK_LEVEL 2
#include "isa/begin.h"
#include "kernels/rmsnorm.h"
#include "isa/end.h"

#include "timing.h"

int main(int argc, char **argv) {
    if (!__builtin_cpu_supports("avx512f")) { fprintf(stderr, "this CPU has no AVX-512\n"); return 1; }
    if (argc < 4) { fprintf(stderr, "usage: time-rms N ROWS REPS [add]\n"); return 1; }
    const size_t n = (size_t)atoi(argv[1]), rows = (size_t)atoi(argv[2]);
    const int reps = atoi(argv[3]), add = argc > 4 && strcmp(argv[4], "add") == 0;
    float *x = aligned_alloc(64, n * rows * 4 + 64), *h = aligned_alloc(64, n * rows * 4 + 64),
          *y = aligned_alloc(64, n * rows * 4 + 64), *w = malloc(n * 4);
    size_t *refused = malloc(rows * sizeof *refused);
    uint64_t state = 88172645463325252ull;
    for (size_t i = 0; i < n * rows; i++) {
        state ^= state << 13, state ^= state >> 7, state ^= state << 17;
        x[i] = (float)(-2 + 4 * ((double)(state >> 11) * 0x1p-53));
        h[i] = 0;
        y[i] = 0;
    }
    for (size_t i = 0; i < n; i++) w[i] = 1;
    for (int pipelined = 0; pipelined < 2; pipelined++) {
        double times[9];
        for (int t = 0; t < 9; t++) {
            const double start = now();
            for (int r = 0; r < reps; r++) {
                if (!pipelined) {
                    for (size_t q = 0; q < rows; q++) {
                        const float *in = add ? h + q * n : x + q * n;
                        const double s = add ? NK_NAME(nk_rms_add_row_sumsq_f)(x + q * n, h + q * n, h + q * n, n)
                                             : NK_NAME(nk_rms_row_sumsq_f)(x + q * n, n);
                        NK_NAME(nk_rms_scale)(in, y + q * n, n, (float)(1 / sqrt(s / (double)n + 1e-5)), w, 0);
                    }
                } else {
                    for (size_t q = 0; q < rows; q += 128) {
                        const size_t k = rows - q < 128 ? rows - q : 128;
                        if (add)
                            (void)NK_NAME(nk_rms_add_forward_rows)(x + q * n, h + q * n, h + q * n, y + q * n, k, n,
                                                                   1e-5, w, 0, NULL, refused);
                        else
                            (void)NK_NAME(nk_rms_forward_rows)(x + q * n, y + q * n, k, n, 1e-5, w, 0, NULL, refused);
                    }
                }
            }
            times[t] = (now() - start) / ((double)reps * (double)rows) * 1e9;
        }
        qsort(times, 9, sizeof times[0], ascending);
        printf("%s%s: %.1f ns/row median, %.1f fastest (%zu rows of %zu)\n", add ? "add, " : "",
               pipelined ? "pipelined" : "two passes", times[4], times[0], rows, n);
    }
    return 0;
}
